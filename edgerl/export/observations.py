"""Observations to check an export against: random ones drawn from the observation space, and
recorded ones from rolling the environment with the policy itself (what the robot will see)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgerl.envs import expand_bound, make_env, random_observations  # noqa: F401 (re-exported)
from edgerl.errors import CheckpointError, ConfigError, EdgerlError
from edgerl.export.wrappers import DeployedPolicy

RECORDED_HINT = "pass --recorded-steps 0 to check on random observations only"


def obs_space(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's Box observation-space description (the only kind edgerl exports)."""
    space = ckpt["env"].get("observation_space", {})
    if space.get("kind") != "box":
        raise CheckpointError(f"cannot export a policy with a {space.get('kind')!r} observation space; "
                              "edgerl exports Box observations (vectors or uint8 images)")
    return space


def input_dtype(space: dict[str, Any]) -> np.dtype:
    """dtype of the ONNX input: uint8 for image observations, float32 otherwise."""
    return np.dtype(np.uint8) if np.dtype(space["dtype"]) == np.uint8 else np.dtype(np.float32)


def policy_obs_stats(policy: DeployedPolicy) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Mean and std of the policy's normaliser (None, None without one)."""
    if policy.normalizer is None:
        return None, None
    return policy.normalizer.mean.numpy(), np.sqrt(policy.normalizer.var.numpy() + policy.normalizer.eps)


@torch.no_grad()
def torch_actions(policy: DeployedPolicy, obs: np.ndarray, dtype: np.dtype, starts: np.ndarray | None = None) -> np.ndarray:
    """Actions of the eager torch policy for a batch of raw observations cast to ``dtype``.

    A recurrent policy reads the batch as ONE stream in order, from the zero state (episode start)
    with the state fed back and zeroed again wherever ``starts`` (bool ``[n]``) is True: the
    semantics of a bundle's ``reference.npz`` and of every comparison.
    """
    x = torch.as_tensor(np.ascontiguousarray(obs, dtype=dtype))
    if policy.recurrent is not None:
        flags = None if starts is None else torch.as_tensor(np.asarray(starts, dtype=bool))[:, None]
        return policy.run_sequence(x[:, None], flags)[0][:, 0].numpy()
    return policy(x).numpy()


def one_episode(n: int) -> np.ndarray:
    """The episode-start flags of ``n`` states that form one episode: only the first is a start."""
    starts = np.zeros(n, dtype=bool)
    starts[:1] = True
    return starts


def recorded_observations(policy: DeployedPolicy, ckpt: dict[str, Any], n: int, seed: int = 0) -> np.ndarray:
    """Roll the checkpoint's environment for ``n`` steps with ``policy`` and return what it observed.

    Raises:
        ConfigError: The environment cannot be made, or its observations differ from the checkpoint's.
    """
    return recorded_episodes(policy, ckpt, n, seed)[0]


def recorded_episodes(policy: DeployedPolicy, ckpt: dict[str, Any], n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`recorded_observations` with the episode-start flags: ``(obs[n, ...], starts[n] bool)``,
    ``starts[0]`` True and True wherever the env was reset after a terminal or truncated step.

    Raises:
        ConfigError: The environment cannot be made, or its observations differ from the checkpoint's.
    """
    from edgerl.export.registry import export_adapter

    space = obs_space(ckpt)
    env_id = ckpt["env"]["id"]
    try:
        env = export_adapter(ckpt["algo"]).make_env(ckpt, seed)
    except EdgerlError as e:
        raise ConfigError(f"{e}; {RECORDED_HINT}") from None
    try:
        shape = tuple(env.observation_space.shape or ())
        if shape != tuple(space["shape"]):
            raise ConfigError(f"{env_id} observes shape {list(shape)} but the checkpoint's policy takes "
                              f"{space['shape']} (made with wrappers edgerl export does not know); {RECORDED_HINT}")
        dtype = input_dtype(space)
        out = np.empty((n, *shape), dtype=np.dtype(space["dtype"]))
        starts = one_episode(n)
        obs, _ = env.reset(seed=seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # batch-1 calls of small nets: extra threads only add overhead
        state = policy.initial_state(1)  # a recurrent policy's memory, zero at each episode start
        try:
            for i in range(n):
                out[i] = obs
                with torch.no_grad():
                    act_t, state = policy.step(torch.as_tensor(np.ascontiguousarray(obs[None], dtype=dtype)), state)
                action = act_t.numpy()[0]
                obs, _, terminated, truncated, _ = env.step(int(action) if policy.discrete else action)
                if terminated or truncated:
                    obs, _ = env.reset()
                    state = policy.initial_state(1)
                    if i + 1 < n:
                        starts[i + 1] = True
        finally:
            torch.set_num_threads(threads)
        return out, starts
    finally:
        env.close()


def reference_observations(ckpt: dict[str, Any] | str | os.PathLike, n: int, seed: int = 0,
                           recorded: bool = True, recorded_only: bool = False) -> dict[str, np.ndarray]:
    """Observations and the actions the exported policy must give for them (a bundle's reference.npz).

    Half the observations are recorded from the environment (if ``recorded``), the rest random.

    Args:
        ckpt: A loaded checkpoint dict, or its path.
        n: Number of observations.
        seed: Seeds the rollout and the random draws.
        recorded: Roll the environment; False gives random observations only.
        recorded_only: All ``n`` recorded (int8 graphs are calibrated on what the policy sees,
            so random observations outside that range are no fair reference).

    Returns:
        ``{"obs": [n, *obs_shape] in the env's dtype, "action": [n, *action_shape] (float32 or int64)}``,
        and for a recurrent policy ``"start"`` ([n] bool): the stream's episode starts, where the
        state is reset. The random part is an episode of its own (split at ``n // 2`` when nothing is
        recorded), so the reference resets inside the stream and the device checks that path.
    """
    from edgerl.export.policy import policy_from_checkpoint

    if not isinstance(ckpt, dict):
        from edgerl.checkpoint import load_checkpoint

        ckpt = load_checkpoint(ckpt)
    policy = policy_from_checkpoint(ckpt)
    space = obs_space(ckpt)
    n_rec = (n if recorded_only else n // 2) if recorded else 0
    rng = np.random.default_rng(seed)
    parts = [random_observations(space, n - n_rec, rng, *policy_obs_stats(policy))] if n > n_rec else []
    starts = np.zeros(n, dtype=bool)
    starts[0] = True
    if n_rec < n:  # the random part starts an episode of its own
        starts[n_rec if n_rec else n // 2] = True
    if n_rec:
        rec, starts[:n_rec] = recorded_episodes(policy, ckpt, n_rec, seed)
        parts.insert(0, rec)
    obs = np.concatenate(parts)
    if policy.recurrent is None:
        return {"obs": obs, "action": torch_actions(policy, obs, input_dtype(space))}
    return {"obs": obs, "action": torch_actions(policy, obs, input_dtype(space), starts), "start": starts}


def latest_replay(ckpt_file: str | os.PathLike) -> Path | None:
    """The newest ``replay-<step>.npz`` beside a checkpoint, or None."""
    folder = Path(ckpt_file).parent
    found = [(int(m.group(1)), p) for p in folder.glob("replay-*.npz")
             if (m := re.fullmatch(r"replay-(\d+)\.npz", p.name))]
    return max(found)[1] if found else None


def load_observation_file(path: str | os.PathLike, obs_shape: list[int]) -> np.ndarray:
    """Observations from an ``.npz`` file (key ``obs``, e.g. a replay buffer or a robot log).

    Raises:
        ConfigError: Unreadable file, no ``obs`` array, or the wrong observation shape.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            if "obs" not in data:
                raise ConfigError(f"{path} holds {sorted(data.files)} but no 'obs' array; save observations "
                                  "as np.savez(FILE, obs=array[n, *obs_shape])")
            obs = np.asarray(data["obs"])
    except ConfigError:
        raise
    except Exception as e:  # missing file, not a zip, pickled arrays
        raise ConfigError(f"cannot read observations from {path} ({type(e).__name__}: {e}); pass an .npz file "
                          "with an 'obs' array") from None
    if list(obs.shape[1:]) != list(obs_shape) or len(obs) == 0:
        raise ConfigError(f"{path}: 'obs' has shape {list(obs.shape)}, expected [n>0, *{list(obs_shape)}]")
    if not np.all(np.isfinite(obs)):
        raise ConfigError(f"{path}: 'obs' holds NaN or inf; calibrate on finite observations")
    return obs

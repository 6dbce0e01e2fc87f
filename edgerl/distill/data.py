"""The states a student learns on: the teacher's replay buffer, logged observations, teacher or
student rollouts (DAgger), each labelled with the teacher's raw outputs.

A recurrent teacher's states are a stream in time order with episode-start flags (``starts``,
bool ``[n]``): its label at a step depends on the observations since the episode began."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgerl.distill.student import raw_outputs, raw_stream
from edgerl.errors import CheckpointError, ConfigError
from edgerl.export.observations import (
    input_dtype,
    load_observation_file,
    obs_space,
    one_episode,
    recorded_episodes,
)
from edgerl.export.wrappers import DeployedPolicy


def replay_states(ckpt_path: Path, ckpt: dict[str, Any], limit: int) -> np.ndarray | None:
    """The most recent ``limit`` (0: all) observations of the replay buffer saved beside a train
    checkpoint (``replay-<step>.npz``), or None when it has none.

    Raises:
        CheckpointError: The file is named by the checkpoint but missing or unreadable.
    """
    name = ckpt.get("replay")
    if not name:
        return None
    path = ckpt_path.parent / name
    if not path.is_file():
        raise CheckpointError(f"{path}: the checkpoint's replay buffer is missing; copy it beside ckpt.pt or pass "
                              "--observations")
    try:
        with np.load(path, allow_pickle=False) as data:
            capacity, pos, size = (int(v) for v in data["meta"])
            order = np.roll(np.arange(size), -pos) if size == capacity else np.arange(size)
            if limit:
                order = order[-limit:]
            obs = data["obs"][np.sort(order)]
    except Exception as e:  # zipfile/npz errors vary; all mean the file is unusable
        raise CheckpointError(f"{path}: replay buffer is unreadable ({type(e).__name__}: {e})") from None
    _check_shape(obs, ckpt, str(path))
    return obs


def load_observations(path: str | Path, ckpt: dict[str, Any]) -> np.ndarray:
    """Observations logged elsewhere (a robot): an ``.npz`` with an ``obs`` array ``[n, *obs_shape]``.

    Raises:
        ConfigError: Missing file, no ``obs`` array, or observations of another shape.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--observations {path}: no such file (expected an .npz with an 'obs' array)")
    return load_observation_file(path, list(obs_space(ckpt)["shape"]))


def logged_starts(path: str | Path, n: int) -> np.ndarray:
    """The episode starts of ``n`` logged observations: the file's ``start`` array (bool ``[n]``)
    when it has one, else one episode from the first observation on (a recurrent teacher reads
    the file as one stream in the order it was logged).

    Raises:
        ConfigError: A ``start`` array of another length or kind.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            if "start" not in f.files:
                return one_episode(n)
            starts = np.asarray(f["start"])
    except (OSError, ValueError) as e:  # e.g. a pickled object array
        raise ConfigError(f"--observations {path}: cannot read 'start' ({type(e).__name__}: {e}); save it as a "
                          f"bool array of the {n} episode-start flags of 'obs'") from None
    if starts.shape != (n,) or starts.dtype != np.bool_:
        raise ConfigError(f"--observations {path}: 'start' must be a bool array of the {n} episode-start flags "
                          f"of 'obs', got {starts.dtype} {list(starts.shape)}")
    starts = starts.copy()
    starts[:1] = True  # the stream begins an episode whatever was logged before it
    return starts


def _check_shape(obs: np.ndarray, ckpt: dict[str, Any], what: str) -> None:
    shape = list(obs_space(ckpt)["shape"])
    if obs.ndim != len(shape) + 1 or list(obs.shape[1:]) != shape or len(obs) == 0:
        raise ConfigError(f"{what}: observations of shape {list(obs.shape)}; the teacher takes [n, {', '.join(map(str, shape))}]")


def rollout_states(policy: DeployedPolicy, ckpt: dict[str, Any], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` states visited by ``policy`` in the teacher's env (deterministic actions; a recurrent
    policy with its memory), in order, and their episode-start flags."""
    return recorded_episodes(policy, ckpt, n, seed=seed)


@torch.no_grad()
def label(teacher: DeployedPolicy, obs: np.ndarray, ckpt: dict[str, Any], starts: np.ndarray | None = None,
          batch: int = 4096) -> np.ndarray:
    """The teacher's raw outputs (pre-tanh means or scores) for ``obs``, float32. A recurrent
    teacher reads ``obs`` as one stream, its memory zeroed wherever ``starts`` is True."""
    dtype = input_dtype(obs_space(ckpt))
    if teacher.recurrent is not None:
        flags = one_episode(len(obs)) if starts is None else starts
        return raw_stream(teacher, torch.as_tensor(np.ascontiguousarray(obs, dtype=dtype)), flags).numpy().astype(np.float32)
    parts = [raw_outputs(teacher, torch.as_tensor(np.ascontiguousarray(obs[i:i + batch], dtype=dtype))).numpy()
             for i in range(0, len(obs), batch)]
    return np.concatenate(parts).astype(np.float32)

"""Image environments for PPO and DQN: ALE Atari with the standard preprocessing, vectorised.

Wrapper order (inner to outer): ALE (frameskip 1, sticky actions) -> AtariPreprocessing (noop
reset, frame skip with max-pool, 84x84 grayscale) -> TimeLimit -> RecordEpisodeStatistics (true
game score) -> EpisodicLife (training only, optional) -> FireReset -> sign reward clipping
(training only, optional) -> FrameStackObservation. Observations are uint8 ``[stack, H, W]``.

Vector envs are gymnasium ``SyncVectorEnv`` in ``SAME_STEP`` autoreset mode: an episode's last
observation arrives in ``info["final_obs"]`` and ``obs`` is already the next episode's first.

Procgen (the paper's benchmark) is not supported in this environment: ``procgen`` has no
Python 3.11 wheel, ``procgen-gym`` needs Python >= 3.13, and ``procgen-mirror``/``procgen2``
0.10.7 (cp311 wheels) pin ``numpy<2`` and ``gym<1``/``gym3``. To run it, use a separate venv
(``pip install "numpy<2" procgen-mirror==0.10.7`` beside edgerl's training extra) and adapt
``procgen.ProcgenGym3Env`` (already vectorised, uint8 HWC 64x64x3) to the vector-env interface
used here (channel-first observations, ``final_obs`` on episode ends); the nets need no change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import (
    AtariPreprocessing,
    FrameStackObservation,
    RecordEpisodeStatistics,
    TimeLimit,
    TransformReward,
)

from edgerl.config import doc
from edgerl.envs import describe_space, make_env
from edgerl.errors import ConfigError


@dataclass
class ImageEnvConfig:
    """Preprocessing of image envs (shared by PPO and DQN; stored with the checkpoint)."""

    frame_stack: int = doc("Frames stacked into one observation.", 4, min=1)
    frame_size: int = doc("Observation height and width after resizing (pixels).", 84, min=1)
    frame_skip: int = doc("Agent step = this many emulator frames (max-pooled over the last two).", 4, min=1)
    noop_max: int = doc("Up to this many no-op actions after each reset (random starts).", 30, min=0)
    sticky_actions: float = doc("ALE repeat-action probability (0.25 in v5 envs).", 0.25, min=0, max=1)
    episodic_life: bool = doc("Training: a lost life ends the episode (the game goes on).", True)
    fire_reset: bool = doc("Press FIRE after reset in games that need it (Breakout, ...).", True)
    clip_rewards: bool = doc("Training: clip rewards to their sign (-1, 0, 1).", True)
    max_episode_steps: int = doc("Truncate episodes after N agent steps; 0 = the env's limit (27k for ALE v5).", 0, min=0)


class EpisodicLifeEnv(gym.Wrapper):
    """Ends the agent's episode at a lost life; ``reset`` restarts the game only when it is over
    (after SB3's ``EpisodicLifeEnv``). A truncation counts as the game's end."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class FireResetEnv(gym.Wrapper):
    """Presses FIRE (then action 2) after each reset, for games that wait for it."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.env.reset(**kwargs)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info


def make_recorded_env(env_id: str, preprocessing: dict[str, Any] | None, seed: int | None = None) -> gym.Env:
    """The evaluation env of a policy from its preprocessing record (a checkpoint's
    ``env.preprocessing``, or a contract's ``observation.preprocessing``): frames as it trained on.

    Raises:
        ConfigError: The record is missing or not an Atari preprocessing.
    """
    pre = preprocessing or {}
    if pre.get("kind") != "atari":
        raise ConfigError(f"{env_id}: no image preprocessing recorded (preprocessing kind is {pre.get('kind')!r}, "
                          "expected 'atari')")
    if not env_id.startswith("ALE/"):
        raise ConfigError(f"{env_id} is not an Atari env, but the policy observes preprocessed Atari frames "
                          f"({pre.get('frame_stack')} x {pre.get('frame_size')}x{pre.get('frame_size')}); pass an "
                          "ALE/... env")
    known = {f.name for f in fields(ImageEnvConfig)}
    return make_image_env(env_id, ImageEnvConfig(**{k: v for k, v in pre.items() if k in known}), train=False,
                          seed=seed)


def make_image_env(env_id: str, cfg: ImageEnvConfig, train: bool = True, seed: int | None = None) -> gym.Env:
    """One preprocessed image env; ``train=False`` gives raw game rewards and whole games."""
    if not env_id.startswith("ALE/"):
        hint = " (Procgen is not supported in this environment: see edgerl/algos/atari.py)" if "procgen" in env_id.lower() else ""
        raise ConfigError(f"PPO/DQN train on ALE Atari envs (e.g. ALE/Pong-v5, ALE/Breakout-v5), got {env_id!r}{hint}")
    env = make_env(env_id, seed=seed, frameskip=1, repeat_action_probability=cfg.sticky_actions)
    env = AtariPreprocessing(env, noop_max=cfg.noop_max, frame_skip=cfg.frame_skip, screen_size=cfg.frame_size)
    if cfg.max_episode_steps > 0:
        env = TimeLimit(env, cfg.max_episode_steps)
    env = RecordEpisodeStatistics(env)
    if train and cfg.episodic_life:
        env = EpisodicLifeEnv(env)
    if cfg.fire_reset and "FIRE" in env.unwrapped.get_action_meanings()[1:2]:
        env = FireResetEnv(env)
    if train and cfg.clip_rewards:
        env = TransformReward(env, lambda r: float(np.sign(r)))
    env = FrameStackObservation(env, cfg.frame_stack)
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ConfigError(f"{env_id}: PPO/DQN need a discrete action space, got {env.action_space}")
    return env


def make_vector_env(env_id: str, cfg: ImageEnvConfig, num_envs: int, seed: int) -> gym.vector.SyncVectorEnv:
    """``num_envs`` training envs in one ``SyncVectorEnv`` (SAME_STEP autoreset)."""
    if num_envs < 1:
        raise ConfigError(f"--num-envs must be at least 1, got {num_envs}")
    fns = [lambda i=i: make_image_env(env_id, cfg, train=True, seed=seed + i) for i in range(num_envs)]
    envs = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    envs.single_action_space.seed(seed)
    return envs


def image_env_info(envs: gym.vector.VectorEnv, env_id: str, cfg: ImageEnvConfig) -> dict[str, Any]:
    """Env id, spaces and preprocessing, as stored in checkpoints (what a deployment must mimic)."""
    preprocessing = {f.name: getattr(cfg, f.name) for f in fields(ImageEnvConfig)}
    return {
        "id": env_id,
        "observation_space": describe_space(envs.single_observation_space),
        "action_space": describe_space(envs.single_action_space),
        "action_meanings": list(envs.envs[0].unwrapped.get_action_meanings()),
        "preprocessing": {"kind": "atari", "grayscale": True, **preprocessing},
    }


def episode_returns(info: dict[str, Any]) -> list[float]:
    """Game scores of the episodes that ended in this vector step (from RecordEpisodeStatistics)."""
    final = info.get("final_info")
    if not final or "episode" not in final:
        return []
    mask = final["_episode"]
    return [float(r) for r in np.asarray(final["episode"]["r"])[mask]]


def final_observations(info: dict[str, Any], done: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The last observation of each env whose episode ended (``like`` where it did not)."""
    out = like.copy()
    if done.any():
        for i in np.flatnonzero(done):
            out[i] = info["final_obs"][i]
    return out


def evaluate_image_policy(act: Callable[[np.ndarray], int], env_id: str, cfg: ImageEnvConfig,
                          episodes: int, seed: int, env: gym.Env | None = None) -> np.ndarray:
    """Game scores of ``episodes`` whole games (no life loss ends, no reward clipping), seeds
    ``seed + i``; ``env`` (from ``make_image_env(..., train=False)``) is reused if given."""
    own = env is None
    env = make_image_env(env_id, cfg, train=False, seed=seed) if own else env
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done, total = False, 0.0
            while not done:
                obs, r, term, trunc, _ = env.step(act(obs))
                total += float(r)
                done = term or trunc
            returns.append(total)
    finally:
        if own:
            env.close()
    return np.asarray(returns, dtype=np.float64)

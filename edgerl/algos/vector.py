"""Stepping one or many continuous-control envs through one interface, for the SAC loop.

``StepEnvs.step`` returns the observations to store (the episode's last one where an episode
ended) separately from the observations to act on next (already reset there), so the loop reads
the same for one plain env and for a gymnasium vector env of N.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgerl.envs import make_env
from edgerl.errors import ConfigError

VECTOR_MODES = ("sync", "async")


class StepEnvs:
    """``num_envs`` copies of ``env_id``: a plain env for one (reset with ``seed + episodes`` at
    the start and unseeded after each episode, as the loop always did), a ``SyncVectorEnv`` or
    ``AsyncVectorEnv`` (SAME_STEP autoreset) for more."""

    def __init__(self, env_id: str, num_envs: int, seed: int, mode: str = "sync"):
        if num_envs < 1:
            raise ConfigError(f"--num-envs must be at least 1, got {num_envs}")
        if mode not in VECTOR_MODES:
            raise ConfigError(f"--vector-mode {mode!r}: choose {' or '.join(VECTOR_MODES)}")
        self.num_envs = int(num_envs)
        self.env: Any = None
        self.vec: Any = None
        if num_envs == 1:
            self.env = make_env(env_id, seed=seed)
            self.single = self.env
        else:
            import gymnasium as gym

            fns = [lambda i=i: make_env(env_id, seed=seed + i) for i in range(num_envs)]
            cls = gym.vector.SyncVectorEnv if mode == "sync" else gym.vector.AsyncVectorEnv
            self.vec = cls(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
            self.single = make_env(env_id)  # for the space description only
            self.single.close()

    def reset(self, seed: int) -> np.ndarray:
        """Observations ``[N, obs_dim]`` of freshly seeded episodes (env i gets ``seed + i``)."""
        if self.vec is None:
            obs, _ = self.env.reset(seed=seed)
            return np.asarray(obs)[None]
        obs, _ = self.vec.reset(seed=seed)
        return np.asarray(obs)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(next_obs, rewards, terminated, truncated, obs)``: ``next_obs`` holds each
        episode's last observation where it ended, ``obs`` the one to act on next."""
        if self.vec is None:
            next_obs, reward, terminated, truncated, _ = self.env.step(actions[0])
            obs = next_obs
            if terminated or truncated:
                obs, _ = self.env.reset()
            return (np.asarray(next_obs)[None], np.array([reward], dtype=np.float64), np.array([terminated]),
                    np.array([truncated]), np.asarray(obs)[None])
        obs, reward, terminated, truncated, info = self.vec.step(actions)
        done = terminated | truncated
        next_obs = np.array(obs, copy=True)
        for i in np.flatnonzero(done):
            next_obs[i] = info["final_obs"][i]
        return next_obs, np.asarray(reward, dtype=np.float64), terminated, truncated, obs

    def close(self) -> None:
        (self.env if self.vec is None else self.vec).close()

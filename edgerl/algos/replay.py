"""Preallocated uniform replay buffer (numpy), saved beside the checkpoint so that a resumed run
continues with the same data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from edgerl.errors import CheckpointError
from edgerl.runtime.fileio import atomic_write


class ReplayBuffer:
    """Ring buffer of transitions ``(obs, action, reward, next_obs, terminated)``.

    ``terminated`` is the true terminal flag (not time-limit truncation), so bootstrapping
    continues through time limits.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...],
                 obs_dtype: np.dtype = np.float32, act_dtype: np.dtype = np.float32):
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((self.capacity, *act_shape), dtype=act_dtype)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self.pos = 0
        self.size = 0

    def add(self, obs, action, reward: float, next_obs, terminated: bool) -> None:
        i = self.pos
        self.obs[i] = obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_obs[i] = next_obs
        self.terminated[i] = terminated
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """A uniform batch as torch tensors (zero-copy views of fresh numpy arrays)."""
        idx = rng.integers(0, self.size, size=batch_size)
        return {
            "obs": torch.from_numpy(self.obs[idx]),
            "actions": torch.from_numpy(self.actions[idx]),
            "rewards": torch.from_numpy(self.rewards[idx]),
            "next_obs": torch.from_numpy(self.next_obs[idx]),
            "terminated": torch.from_numpy(self.terminated[idx]),
        }

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the filled part of the buffer to an ``.npz`` file atomically."""
        n = self.size

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(
                    f, obs=self.obs[:n], next_obs=self.next_obs[:n], actions=self.actions[:n],
                    rewards=self.rewards[:n], terminated=self.terminated[:n],
                    meta=np.array([self.capacity, self.pos, self.size], dtype=np.int64),
                )

        atomic_write(path, write)

    def load(self, path: str | os.PathLike) -> None:
        """Restore the state written by :meth:`save` into this (equally shaped) buffer."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                capacity, pos, size = (int(v) for v in data["meta"])
                if data["obs"].shape[1:] != self.obs.shape[1:] or data["actions"].shape[1:] != self.actions.shape[1:]:
                    raise CheckpointError(
                        f"{path}: replay buffer holds observations {data['obs'].shape[1:]} and actions "
                        f"{data['actions'].shape[1:]}, this run expects {self.obs.shape[1:]} and {self.actions.shape[1:]}"
                    )
                # Oldest transition first, so the buffer may be loaded into a different capacity
                # (a resumed run with a larger step budget gets a larger buffer).
                order = np.roll(np.arange(size), -pos) if size == capacity else np.arange(size)
                order = order[-self.capacity:]
                for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
                    getattr(self, name)[: len(order)] = data[name][order]
        except CheckpointError:
            raise
        except Exception as e:  # zipfile/npz errors vary; all mean the file is unusable
            raise CheckpointError(f"{path}: replay buffer is unreadable ({type(e).__name__}: {e})") from e
        self.size = len(order)
        self.pos = self.size % self.capacity

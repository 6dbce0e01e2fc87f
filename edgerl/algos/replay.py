"""Preallocated uniform replay buffer (numpy), saved beside the checkpoint so that a resumed run
continues with the same data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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
                 obs_dtype: type[np.generic] = np.float32, act_dtype: type[np.generic] = np.float32):
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((self.capacity, *act_shape), dtype=act_dtype)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self.pos = 0
        self.size = 0

    def add(self, obs: Any, action: Any, reward: float, next_obs: Any, terminated: bool) -> None:
        i = self.pos
        self.obs[i] = obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_obs[i] = next_obs
        self.terminated[i] = terminated
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def add_batch(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
                  terminated: np.ndarray) -> None:
        """One vector step: ``n`` transitions (``[n, ...]`` arrays), written in env order."""
        if len(obs) == 1:
            self.add(obs[0], actions[0], float(rewards[0]), next_obs[0], bool(terminated[0]))
            return
        for i in range(len(obs)):
            self.add(obs[i], actions[i], float(rewards[i]), next_obs[i], bool(terminated[i]))

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


class DeviceReplayBuffer(ReplayBuffer):
    """The same ring buffer with its storage on an accelerator: transitions are copied there as
    they arrive, and minibatches are drawn and gathered there (indices from a device generator),
    so a gradient update never waits on the host. Saved in the same ``.npz`` form as
    :class:`ReplayBuffer`, so a run moves between a GPU and a CPU machine with its data."""

    FIELDS = ("obs", "next_obs", "actions", "rewards", "terminated")

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...],
                 device: torch.device, seed: int = 0):
        self.capacity = int(capacity)
        self.device = torch.device(device)
        def zeros(*shape: int) -> Any:
            return torch.zeros(shape, dtype=torch.float32, device=self.device)

        self.obs = zeros(self.capacity, *obs_shape)
        self.next_obs = zeros(self.capacity, *obs_shape)
        self.actions = zeros(self.capacity, *act_shape)
        self.rewards = zeros(self.capacity)
        self.terminated = zeros(self.capacity)
        self.pos = 0
        self.size = 0
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def add(self, obs: Any, action: Any, reward: float, next_obs: Any, terminated: bool) -> None:
        self.add_batch(np.asarray(obs)[None], np.asarray(action)[None], np.asarray([reward]),
                       np.asarray(next_obs)[None], np.asarray([terminated]))

    def add_batch(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
                  terminated: np.ndarray) -> None:
        """``n`` transitions in one host-to-device copy per field."""
        n = len(obs)
        idx = torch.as_tensor((self.pos + np.arange(n)) % self.capacity, device=self.device)
        values = (obs, next_obs, actions, rewards, terminated)
        for name, v in zip(self.FIELDS, values, strict=True):
            host = torch.as_tensor(np.asarray(v, dtype=np.float32))
            getattr(self, name)[idx] = host.to(self.device, non_blocking=True)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """A uniform batch drawn and gathered on the device (``rng`` is not used here)."""
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=self.generator)
        return {name: getattr(self, name)[idx] for name in ("obs", "actions", "rewards", "next_obs", "terminated")}

    def save(self, path: str | os.PathLike) -> None:
        n = self.size
        host = {name: getattr(self, name)[:n].cpu().numpy() for name in self.FIELDS}

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **host, meta=np.array([self.capacity, self.pos, self.size], dtype=np.int64))

        atomic_write(path, write)

    def load(self, path: str | os.PathLike) -> None:
        host = ReplayBuffer(self.capacity, tuple(self.obs.shape[1:]), tuple(self.actions.shape[1:]))
        host.load(path)
        for name in self.FIELDS:
            getattr(self, name)[: host.size] = torch.from_numpy(getattr(host, name)[: host.size]).to(self.device)
        self.size, self.pos = host.size, host.pos


def make_replay(capacity: int, obs_shape: tuple[int, ...], act_shape: tuple[int, ...], device: torch.device,
                seed: int = 0) -> ReplayBuffer:
    """A numpy buffer on the CPU (sampled with the run's numpy generator, as always), a
    :class:`DeviceReplayBuffer` on an accelerator."""
    if torch.device(device).type == "cpu":
        return ReplayBuffer(capacity, obs_shape, act_shape)
    return DeviceReplayBuffer(capacity, obs_shape, act_shape, device, seed)

"""The states a student learns on: the teacher's replay buffer, logged observations, teacher or
student rollouts (DAgger), each labelled with the teacher's raw outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgerl.distill.student import raw_outputs
from edgerl.errors import CheckpointError, ConfigError
from edgerl.export.observations import (
    input_dtype,
    load_observation_file,
    obs_space,
    recorded_observations,
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


def _check_shape(obs: np.ndarray, ckpt: dict[str, Any], what: str) -> None:
    shape = list(obs_space(ckpt)["shape"])
    if obs.ndim != len(shape) + 1 or list(obs.shape[1:]) != shape or len(obs) == 0:
        raise ConfigError(f"{what}: observations of shape {list(obs.shape)}; the teacher takes [n, {', '.join(map(str, shape))}]")


def rollout_states(policy: DeployedPolicy, ckpt: dict[str, Any], n: int, seed: int) -> np.ndarray:
    """``n`` states visited by ``policy`` in the teacher's env (deterministic actions)."""
    return recorded_observations(policy, ckpt, n, seed=seed)


@torch.no_grad()
def label(teacher: DeployedPolicy, obs: np.ndarray, ckpt: dict[str, Any], batch: int = 4096) -> np.ndarray:
    """The teacher's raw outputs (pre-tanh means or scores) for ``obs``, float32."""
    dtype = input_dtype(obs_space(ckpt))
    parts = [raw_outputs(teacher, torch.as_tensor(np.ascontiguousarray(obs[i:i + batch], dtype=dtype))).numpy()
             for i in range(0, len(obs), batch)]
    return np.concatenate(parts).astype(np.float32)

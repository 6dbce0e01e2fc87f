"""Tiny teachers for the distillation tests, made directly (no training run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgerl.checkpoint import save_checkpoint
from edgerl.envs import make_env, space_env_info
from tests.export.conftest import make_sac_agent, sac_payload


@pytest.fixture(scope="session")
def hopper_info() -> dict:
    env = make_env("Hopper-v5")
    try:
        return space_env_info(env)
    finally:
        env.close()


def sac_teacher(path: Path, info: dict, seed: int = 0) -> Path:
    """A random 32x32 SAC actor whose mean head is scaled up, so its actions span [-1, 1]
    (an untrained actor's are all near 0, which any student matches)."""
    agent = make_sac_agent(seed=seed)
    with torch.no_grad():
        agent.actor.mean.weight.mul_(5.0)
    save_checkpoint(path, sac_payload(agent, info))
    return path


def teacher_states(n: int, seed: int) -> np.ndarray:
    """Observations around the tiny teacher's normaliser statistics (see make_sac_agent)."""
    rng = np.random.default_rng(seed)
    scale = np.linspace(0.5, 4.0, 11)
    return (rng.standard_normal((n, 11)) * scale + 2.0).astype(np.float64)


class Killed(Exception):
    """Stands for a kill: raised from a distillation's log line to stop it mid-way."""


def kill_at(prefix: str):
    """A ``log`` for ``distill`` that kills the run at the first line starting with ``prefix``."""

    def log(line: str) -> None:
        if line.startswith(prefix):
            raise Killed

    return log

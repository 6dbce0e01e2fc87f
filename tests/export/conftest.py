"""Checkpoints for the export tests, made directly with ``SACAgent`` + ``save_checkpoint``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.checkpoint import save_checkpoint
from edgerl.config import PruneConfig, RunConfig, to_dict
from edgerl.envs import make_env, space_env_info

# Asymmetric bounds so the baked-in rescale is not the identity (Hopper's own are [-1, 1]).
LOW = [-2.0, 0.0, -0.5]
HIGH = [2.0, 1.0, 0.25]


@pytest.fixture(scope="session")
def hopper_env() -> dict[str, Any]:
    env = make_env("Hopper-v5")
    info = space_env_info(env)
    env.close()
    info = copy.deepcopy(info)
    info["action_space"]["low"], info["action_space"]["high"] = list(LOW), list(HIGH)
    return info


def make_sac_agent(obs_norm: bool = True, stats: bool = True, seed: int = 0) -> SACAgent:
    """A tiny SAC agent; with ``stats`` its normaliser holds non-trivial running statistics."""
    torch.manual_seed(seed)
    agent = SACAgent(SACConfig(hidden=[32, 32], obs_norm=obs_norm), obs_dim=11, act_dim=3)
    if stats:
        g = torch.Generator().manual_seed(seed + 1)
        scale = torch.linspace(0.5, 4.0, 11, dtype=torch.float64)
        agent.normalizer.update(torch.randn(500, 11, generator=g, dtype=torch.float64) * scale + 2.0)
    return agent


def sac_payload(agent: SACAgent, env: dict[str, Any], steps: int = 4321) -> dict[str, Any]:
    cfg = agent.cfg
    return {
        "kind": "train", "algo": "sac", "env": env,
        "config": {"run": to_dict(RunConfig(env="Hopper-v5")), "algo": to_dict(cfg), "prune": to_dict(PruneConfig())},
        "agent": agent.state(), "hooks": {}, "counters": {"global_step": steps, "episodes": 3, "updates": 7},
    }


def write_sac_checkpoint(path: Path, env: dict[str, Any], **agent_kw: Any) -> Path:
    save_checkpoint(path, sac_payload(make_sac_agent(**agent_kw), env))
    return path

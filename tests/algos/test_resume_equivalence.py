"""Resume equals an uninterrupted run (issue 12): after restoring a checkpoint, the next SAC
updates from the same batches give bit-identical parameters, optimizer, normaliser and gate
state, not only the same counters."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edgerl.algos.run import attach_hooks, resume_agent, save_train_checkpoint
from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.config import PruneConfig, RunConfig
from edgerl.envs import make_env, space_env_info
from edgerl.prune.hooks import make_hooks

CFG = SACConfig(hidden=[16, 16], batch_size=32, obs_norm=True, ofenet=True, ofenet_layers=2, ofenet_units=6)
PRUNE = PruneConfig(prune="gates", prune_start=0.0, prune_end=1.0, prune_every=3, gate_lambda=0.05)


def _batch(rng: np.random.Generator) -> dict[str, torch.Tensor]:
    obs = rng.normal(size=(32, 11)).astype(np.float32) * 2 + 1
    return {"obs": torch.from_numpy(obs), "actions": torch.from_numpy(rng.uniform(-1, 1, (32, 3)).astype(np.float32)),
            "rewards": torch.from_numpy(rng.normal(size=32).astype(np.float32)),
            "next_obs": torch.from_numpy(obs + rng.normal(size=(32, 11)).astype(np.float32) * 0.1),
            "terminated": torch.from_numpy((rng.random(32) < 0.1).astype(np.float32))}


def _steps(agent: SACAgent, hooks: list, rng: np.random.Generator, first: int, last: int) -> None:
    for step in range(first, last + 1):
        batch = _batch(rng)
        agent.normalizer.update(batch["obs"].double())
        agent.update(batch)
        for h in hooks:
            h.after_update(agent, step)


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in _flat(val, f"{prefix}/{key}").items()}
    if isinstance(obj, (list, tuple)):
        return {k: v for i, val in enumerate(obj) for k, v in _flat(val, f"{prefix}[{i}]").items()}
    return {prefix: obj}


def _state(agent: SACAgent, hooks: list) -> dict[str, Any]:
    return _flat({"agent": agent.state(), "hooks": {h.name: h.state_dict() for h in hooks}})


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    assert a.keys() == b.keys()
    return [k for k in a if not (torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k])]


def test_resumed_updates_equal_uninterrupted_ones(tmp_path):
    env = make_env("Hopper-v5")
    info = space_env_info(env)
    env.close()
    run = RunConfig(env="Hopper-v5", total_steps=30, out=str(tmp_path))

    torch.manual_seed(0)
    agent = SACAgent(CFG, 11, 3)
    hooks = make_hooks(agent, run, CFG, PRUNE)
    rng = np.random.default_rng(0)
    _steps(agent, hooks, rng, 1, 10)
    save_train_checkpoint(tmp_path, algo="sac", env=info, run=run, algo_cfg=CFG, prune=PRUNE, agent=agent,
                          hooks=hooks, counters={"global_step": 10, "episodes": 0, "updates": agent.updates},
                          np_rng=rng, last_eval=(0.0, 0.0))
    _steps(agent, hooks, rng, 11, 16)  # the uninterrupted run goes on
    want = _state(agent, hooks)

    def resumed(reseed: bool) -> dict[str, Any]:
        torch.manual_seed(123)  # a fresh process: other weights, other RNG state
        other = SACAgent(CFG, 11, 3)
        other_rng = np.random.default_rng(99)
        ckpt = resume_agent(tmp_path, "sac", "Hopper-v5", other, other_rng)
        other_hooks = attach_hooks(make_hooks, other, run, CFG, PRUNE, ckpt)
        if reseed:
            torch.manual_seed(5)
        _steps(other, other_hooks, other_rng, 11, 16)
        return _state(other, other_hooks)

    got = resumed(reseed=False)
    assert _differences(want, got) == []
    assert any("theta" in k for k in got) and any("optim" in k for k in got) and any("normalizer" in k for k in got)
    # The comparison can fail: a resumed run with another torch RNG state diverges.
    assert any("/nets/actor/state" in k for k in _differences(want, resumed(reseed=True)))

"""Tiny SAC checkpoints (dense, and a compacted pruned one) and a deploy bundle, made directly.

Timing budgets are tiny: the bench tests check structure and consistency, never speed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.compact import compact_checkpoint
from edgerl.export import export_policy, reference_observations
from edgerl.runtime.bundle import write_bundle
from edgerl.runtime.profile import load_profile

ENV = {"id": "Hopper-v5",
       "observation_space": {"kind": "box", "shape": [11], "dtype": "float64", "low": [None] * 11, "high": [None] * 11},
       "action_space": {"kind": "box", "shape": [3], "dtype": "float32", "low": [-1.0] * 3, "high": [1.0] * 3}}
DENSE, KEPT = [48, 40], [12, 10]
FAST = {"min_queries": 20, "min_seconds": 0.0, "warmup": 5, "rounds": 2, "exporter": "legacy"}
"""run_bench keywords that keep a test fast (structure only)."""
FAST_CLI = ["--min-queries", "20", "--min-seconds", "0", "--warmup", "5", "--rounds", "2", "--exporter", "legacy"]


def _train_ckpt(agent: SACAgent) -> dict[str, Any]:
    return {"kind": "train", "algo": "sac", "env": ENV, "config": {"algo": {"obs_norm": True}},
            "agent": agent.state(), "counters": {"global_step": 1}}


@pytest.fixture(scope="session")
def ckpt_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(pruned policy checkpoint, dense train checkpoint): the pruned one is the dense agent with
    most units zeroed, compacted by edgerl compact (so its widths are KEPT)."""
    root = tmp_path_factory.mktemp("ckpts")
    torch.manual_seed(0)
    agent = SACAgent(SACConfig(hidden=list(DENSE), obs_norm=True), 11, 3)
    agent.normalizer.update(torch.randn(200, 11, dtype=torch.float64) * 2 + 1)
    dense = root / "dense" / "ckpt.pt"
    save_checkpoint(dense, _train_ckpt(agent))
    with torch.no_grad():  # what structured pruning leaves behind: units that read or feed nothing
        agent.actor.trunk[0].weight[KEPT[0]:] = 0
        agent.actor.trunk[0].bias[KEPT[0]:] = -1.0
        agent.actor.trunk[2].weight[KEPT[1]:] = 0
        agent.actor.trunk[2].bias[KEPT[1]:] = -1.0
    payload, report = compact_checkpoint(_train_ckpt(agent), recorded_steps=0, random_obs=64)
    widths = report.widths_after["actor"]
    assert (widths["trunk.0"], widths["trunk.2"]) == tuple(KEPT), widths
    pruned = root / "pruned" / "ckpt.pt"
    save_checkpoint(pruned, payload)
    return pruned, dense


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory, ckpt_pair: tuple[Path, Path]) -> Path:
    """An x86-cpu deploy bundle of the pruned policy (as edgerl deploy writes it)."""
    root = tmp_path_factory.mktemp("bundle")
    report = export_policy(ckpt_pair[0], root / "policy.onnx", recorded_steps=0, exporter="legacy")
    ref = reference_observations(load_checkpoint(ckpt_pair[0]), 16, recorded=False)
    out = root / "bundle-x86-cpu"
    write_bundle(out, report.onnx_path, json.loads(Path(report.contract_path).read_text()), ref["obs"],
                 ref["action"], load_profile("x86-cpu"))
    return out


def assert_percentiles_ordered(row: dict[str, Any]) -> None:
    assert 0 < row["p50_us"] <= row["p90_us"] <= row["p99_us"] <= row["max_us"], row
    assert np.isfinite(row["mean_us"])


def write_sac_run(folder: Path, agent: SACAgent, returns: list[float], hooks: dict[str, Any] | None = None,
                  wall_s: float = 120.0) -> Path:
    """A finished SAC run folder as ``edgerl train`` leaves it: ``ckpt.pt`` (config, agent, hooks,
    counters) and ``metrics.csv`` with one evaluation per 100 steps (``returns``) and rows between."""
    from edgerl.algos.run import MetricsLog
    from edgerl.config import to_dict

    folder.mkdir(parents=True)
    save_checkpoint(folder / "ckpt.pt", {"kind": "train", "algo": "sac", "env": ENV,
                                         "config": {"algo": to_dict(agent.cfg)}, "agent": agent.state(),
                                         "hooks": hooks or {}, "counters": {"global_step": 100 * len(returns),
                                                                            "wall_s": wall_s}})
    log = MetricsLog(folder / "metrics.csv")
    for i, r in enumerate(returns):
        log.write(step=100 * i + 50, train_return=0.0)  # a row without an evaluation
        log.write(step=100 * (i + 1), eval_return=r)
    return folder

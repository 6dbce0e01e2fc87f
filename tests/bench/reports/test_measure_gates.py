"""edgerl.bench.reports.measure_gates (tools/measure_gates.py): the deployed cost of a SAC agent, a run's
summary, the table over seeds, the goal check and the width plots."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.bench.reports.measure_gates import (
    deployed_cost,
    goal_check,
    plot_widths,
    summarize,
    table,
)
from tests.bench.conftest import write_sac_run


def _agent(ofenet: bool) -> SACAgent:
    torch.manual_seed(0)
    return SACAgent(SACConfig(hidden=[12, 10], ofenet=ofenet, ofenet_layers=2, ofenet_units=5), 11, 3)


@pytest.mark.parametrize("ofenet", [False, True], ids=["mlp", "ofenet"])
def test_deployed_cost_is_the_state_block_and_the_actor_without_its_log_std_head(ofenet: bool):
    agent = _agent(ofenet)
    nets = [agent.actor] + ([agent.ofenet.state_block] if ofenet else [])
    head = agent.actor.log_std
    params = sum(p.numel() for n in nets for p in n.parameters()) - sum(p.numel() for p in head.parameters())
    macs = sum(m.in_features * m.out_features for n in nets for m in n.modules() if isinstance(m, nn.Linear))
    assert deployed_cost(agent) == (params, macs - head.in_features * head.out_features)


def test_summary_of_a_gated_run(tmp_path):
    agent = _agent(ofenet=True)
    history = [[0, {"actor.trunk.0": 12}], [50, {"actor.trunk.0": 9}]]
    gates = {"history": history, "expected": [[50, {"actor.trunk.0": 9.5}]]}
    run = write_sac_run(tmp_path / "run", agent, [10.0, 20.0, 30.0, 60.0], hooks={"gates": gates})
    s = summarize(run)
    assert s["final_return"] == 60.0 and s["last3_return"] == pytest.approx(110 / 3)
    assert (s["deployed_params"], s["deployed_macs"]) == deployed_cost(agent)
    assert s["widths"]["actor"] == [12, 10] and s["widths"]["state"] == [5, 5] and len(s["widths"]["action"]) == 2
    assert s["critic_widths"] == [[12, 10], [12, 10]] and s["wall_s"] == 120.0
    assert s["width_history"] == history and s["expected_widths"] == gates["expected"]
    assert s["eval_curve"] == [[100, 10.0], [200, 20.0], [300, 30.0], [400, 60.0]]
    dense = summarize(write_sac_run(tmp_path / "dense", _agent(ofenet=False), [5.0]))
    assert dense["width_history"] is None and dense["expected_widths"] is None and "state" not in dense["widths"]


def _runs(params: list[float], returns: list[float], **extra: Any) -> list[dict[str, Any]]:
    return [{"seed": i + 1, "deployed_params": p, "deployed_macs": p - 10, "last3_return": r, "final_return": r,
             "widths": {"actor": [8, 8]}, "wall_s": 600.0, **extra} for i, (p, r) in enumerate(zip(params, returns,
                                                                                                  strict=True))]


def test_table_and_goal_check():
    results = {"Hopper-v5": {
        "ofenet-dense": _runs([1000, 1000], [100, 100]),
        "ofenet-gates-t0.75": _runs([250, 250], [96, 98]),
        "ofenet-scratch-t0.75": _runs([250], [90]),
        "ofenet-gates-t0.5": _runs([400], [120]),
    }}
    md = table(results)
    assert "| Hopper-v5 | ofenet-dense | 100 ± 0 (n=2) | 100 ± 0 | 1000 ± 0 | 990 ± 0 | {'actor': [8, 8]} | 10 min |" in md
    assert "| Hopper-v5 | ofenet-gates-t0.75 | 97 ± 1 (n=2) |" in md
    goals = goal_check(results).splitlines()
    assert goals == [
        "- Hopper-v5 ofenet-gates-t0.75 (n=2): deployed params 25.0% of ofenet-dense, return 97.0% of "
        "ofenet-dense, scratch 90 -> above: goal met",
        "- Hopper-v5 ofenet-gates-t0.5 (n=1): deployed params 40.0% of ofenet-dense, return 120.0% of "
        "ofenet-dense, no scratch run: goal NOT met",
    ]
    assert goal_check({"Hopper-v5": {"ofenet-gates-x": _runs([1], [1])}}) == ""  # no dense run to compare with


def test_width_plots(tmp_path):
    pytest.importorskip("matplotlib", reason="the width plots need matplotlib: pip install matplotlib")
    history = [[0, {"ofenet.state_block.layers.0.fc": 5, "actor.trunk.0": 12}],
               [50, {"ofenet.state_block.layers.0.fc": 3, "actor.trunk.0": 9}]]
    gated = _runs([1], [1], width_history=history, expected_widths=[[50, {"actor.trunk.0": 9.5}]],
                  eval_curve=[[100, 1.0]])
    dense = _runs([1], [1], width_history=None, eval_curve=[[100, 1.0]])
    written = plot_widths({"ALE/X-v5": {"ofenet-gates-a": gated, "ofenet-dense": dense}}, tmp_path)
    assert written == [str(tmp_path / "widths-ALE_X-v5-ofenet-gates-a.png")]
    assert (tmp_path / "widths-ALE_X-v5-ofenet-gates-a.png").stat().st_size > 0

"""edgerl.bench.reports.compare_pruning (tools/compare_pruning.py): a run's actor size and returns, and the
table over seeds."""

from __future__ import annotations

import pytest
import torch

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.bench.reports.compare_pruning import summarize, table
from tests.bench.conftest import write_sac_run


@pytest.mark.parametrize("ofenet", [False, True], ids=["mlp", "ofenet"])
def test_summary_counts_the_actor_and_its_masked_weights(tmp_path, ofenet: bool):
    torch.manual_seed(0)
    agent = SACAgent(SACConfig(hidden=[12, 10], ofenet=ofenet, ofenet_layers=2, ofenet_units=5), 11, 3)
    with torch.no_grad():
        agent.actor.trunk[0].weight[:2] = 0  # masked (unstructured) weights: parameters, not nonzero ones
    s = summarize(write_sac_run(tmp_path / "run", agent, [1.0, 2.0, 3.0, 7.0], wall_s=90.0))
    a_in = 11 + (10 if ofenet else 0)  # the actor reads the observation and OFENet's state features
    params = a_in * 12 + 12 + 12 * 10 + 10 + 2 * (10 * 3 + 3)
    assert s["actor_params"] == params and s["actor_nonzero_params"] == params - 2 * a_in
    assert s["actor_macs"] == a_in * 12 + 12 * 10 + 2 * 10 * 3
    assert s["actor_widths"] == [12, 10] and s["wall_s"] == 90.0
    assert s["final_return"] == 7.0 and s["last3_return"] == pytest.approx(4.0)


def test_table_means_returns_over_seeds_and_shows_the_first_seeds_sizes():
    run = {"final_return": 10.0, "last3_return": 9.0, "actor_params": 1000, "actor_nonzero_params": 900,
           "actor_macs": 950, "actor_widths": [10, 10], "wall_s": 60.0}
    md = table({"Hopper-v5": {"dense": [run, {**run, "last3_return": 11.0, "actor_params": 5}]}})
    assert md.splitlines()[2] == ("| Hopper-v5 | dense | 10 ± 1 (n=2) | 10 ± 0 | 1,000 (900) | 950 | [10, 10] | "
                                  "1.0 min |")

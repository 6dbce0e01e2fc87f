"""``edgerl compact`` / ``export`` safety (issue 12, items 5 and 10): outputs never replace an
input, a training checkpoint or a replay buffer; a gates checkpoint taken inside the pruning
window is refused unless its gates are rounded, and then the change is measured and reported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.compact import compact_checkpoint
from edgerl.compact.api import OpenGatesError, pending_gates
from edgerl.config import PruneConfig
from edgerl.export.observations import random_observations, torch_actions
from edgerl.export.policy import policy_checkpoint_payload, policy_from_checkpoint
from edgerl.prune.gate_hook import GateHook
from edgerl.prune.gates import fold_gates
from tests.compact.test_compact import ENV, _train_ckpt


def _cli(capsys, *args: str) -> tuple[int, str]:
    from edgerl.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err.strip()


@pytest.fixture
def run_dir(tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "ckpt.pt", _train_ckpt(SACAgent(SACConfig(hidden=[8, 8]), 11, 3)))
    (run / "metrics.csv").write_text("step\n")
    return run


def test_compact_and_export_never_replace_what_they_do_not_own(run_dir, tmp_path, capsys):
    ckpt = run_dir / "ckpt.pt"
    before = ckpt.read_bytes()
    other_run = tmp_path / "other.pt"
    other_run.write_bytes(before)
    probes = [
        (["compact", str(ckpt), "-o", str(ckpt)], "is the input"),
        (["compact", str(run_dir), "-o", str(run_dir / "ckpt.pt")], "is the input"),
        (["compact", str(ckpt), "-o", str(other_run)], "holds a train checkpoint"),
        (["compact", str(ckpt), "-o", str(run_dir)], "is a folder"),
        (["compact", str(ckpt), "-o", str(run_dir / "metrics.csv")], "training run's file"),
        (["compact", str(ckpt), "--json", str(tmp_path)], "--json"),
        (["compact", str(ckpt), "-o", str(run_dir / "metrics.csv" / "x.pt")], "is a file, not a folder"),
        (["export", str(ckpt), "-o", str(other_run)], "holds a train checkpoint"),
        (["export", str(ckpt), "--contract", str(run_dir / "metrics.csv")], "training run's file"),
        (["export", str(ckpt), "-o", str(run_dir)], "is a folder"),
    ]
    for args, match in probes:
        code, err = _cli(capsys, *args)
        assert code == 2 and match in err and "\n" not in err, (args, err)
    assert ckpt.read_bytes() == before and other_run.read_bytes() == before
    assert (run_dir / "metrics.csv").read_text() == "step\n"
    # Compacting a policy checkpoint again: its default output (compact.pt beside it) is itself.
    assert _cli(capsys, "compact", str(ckpt), "--recorded-steps", "0")[0] == 0
    code, err = _cli(capsys, "compact", str(run_dir / "compact.pt"), "--recorded-steps", "0")
    assert code == 2 and "is the input" in err
    # ...and an existing policy checkpoint may be rewritten by compact.
    assert _cli(capsys, "compact", str(ckpt), "--recorded-steps", "0")[0] == 0


def _gated_agent(theta_edits: dict[str, list[tuple[int, float]]], finished: bool = False):
    torch.manual_seed(0)
    agent = SACAgent(SACConfig(hidden=[12, 10], obs_norm=True, ofenet=True, ofenet_layers=2, ofenet_units=6), 11, 3)
    agent.normalizer.update(torch.randn(200, 11, dtype=torch.float64) * 2 + 1)
    hook = GateHook(agent, PruneConfig(prune="gates", gate_cost="deploy", prune_start=0.0, prune_end=1.0,
                                       prune_every=1), total_steps=100)
    with torch.no_grad():
        for key, edits in theta_edits.items():
            for i, v in edits:
                hook.pruner.gates.theta[key][i] = v
    hook.finished = finished
    ckpt = _train_ckpt(agent)
    ckpt["env"] = ENV
    ckpt["config"] = {"algo": {"obs_norm": True}, "prune": {"prune": "gates"}}
    ckpt["hooks"] = {"gates": hook.state_dict()}
    ckpt["counters"] = {"global_step": 40}
    hook.pruner.gates.remove_hooks()
    return agent, ckpt


EDITS = {"actor.trunk.0": [(0, 0.02), (3, 0.4), (5, 0.7)], "actor.trunk.2": [(1, 0.3)],
         "ofenet.state_block.layers.0.fc": [(2, 0.1), (4, 0.9)], "qf1.trunk.0": [(0, 0.05)]}


def test_gates_inside_the_window_are_refused_or_rounded_and_reported():
    agent, ckpt = _gated_agent(EDITS)
    assert pending_gates(ckpt) is not None
    with pytest.raises(OpenGatesError, match="--round-gates") as err:
        compact_checkpoint(ckpt, recorded_steps=0)
    assert "\n" not in str(err.value)

    payload, report = compact_checkpoint(ckpt, recorded_steps=0, random_obs=256, round_gates=True)
    rounding = report.gate_rounding
    # theta <= 0.5 goes in the deployed nets only (the critic's gate is not deployed).
    assert rounding["units_removed"] == {"actor/trunk.0": 2, "actor/trunk.2": 1, "ofenet_state/layers.0.fc": 1}
    assert report.widths_after["actor"]["trunk.0"] == 10 and report.widths_after["actor"]["trunk.2"] == 9
    assert rounding["max_abs_diff_vs_open"] > 1e-4  # rounding changed the deployed function: reported
    assert max(report.max_abs_diff.values()) <= 1e-5  # and compaction of the rounded one is exact

    # Independent reference: fold the gates of the live agent at 0.5, build its policy, compare.
    theta = {k: t.detach() for k, t in ckpt["hooks"]["gates"]["pruner"]["theta"].items()}
    ref = policy_from_checkpoint(policy_checkpoint_payload("sac", ENV, ckpt["config"],
                                                           fold_gates(agent.deployed_nets(), theta, threshold=0.5)))
    obs = random_observations(ENV["observation_space"], 64, np.random.default_rng(3))
    got = torch_actions(policy_from_checkpoint(payload), obs, np.float32)
    np.testing.assert_allclose(got, torch_actions(ref, obs, np.float32), atol=1e-5, rtol=0)
    as_open = torch_actions(policy_from_checkpoint(ckpt), obs, np.float32)
    assert np.abs(as_open - got).max() > 1e-4


def test_decided_gates_compact_without_rounding():
    _, finished = _gated_agent(EDITS, finished=True)  # the window is over: survivors pass with xi = 1
    assert pending_gates(finished) is None
    _, report = compact_checkpoint(finished, recorded_steps=0)
    assert report.gate_rounding is None
    _, open_gates = _gated_agent({})  # inside the window, but every deployed gate is still 1: exact
    assert pending_gates(open_gates) is None
    _, critic_only = _gated_agent({"qf1.trunk.0": [(0, 0.05)]})
    assert pending_gates(critic_only) is None


def test_compact_cli_round_gates_flag(tmp_path, capsys):
    _, ckpt = _gated_agent(EDITS)
    save_checkpoint(tmp_path / "ckpt.pt", ckpt)
    code, err = _cli(capsys, "compact", str(tmp_path / "ckpt.pt"), "--recorded-steps", "0")
    assert code == 2 and "inside the pruning window" in err and not (tmp_path / "compact.pt").exists()
    code = _cli(capsys, "compact", str(tmp_path / "ckpt.pt"), "--recorded-steps", "0", "--round-gates")[0]
    assert code == 0
    out = load_checkpoint(tmp_path / "compact.pt")
    assert out["compact"]["gate_rounding"]["units_removed"]["actor/trunk.0"] == 2

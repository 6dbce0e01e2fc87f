"""``edgerl train --prune gates`` end to end: with and without OFENet, units removed during
training, and resume from the checkpoint."""

from __future__ import annotations

import csv

import torch

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.algos.sac_train import train_sac
from edgerl.checkpoint import load_checkpoint
from edgerl.config import PruneConfig, RunConfig
from edgerl.prune.gate_hook import GateHook
from tests.conftest import TINY_SAC, kill_after_checkpoint, run_cli

OFENET = ["--ofenet", "true", "--ofenet-layers", "2", "--ofenet-units", "8"]
GATES = ["--prune", "gates", "--gate-lambda", "0.01", "--prune-start", "0", "--prune-end", "1", "--prune-every", "20"]


def _gate_widths_match_nets(ckpt) -> dict[str, int]:
    """The saved gates have one probability per unit of the saved (possibly pruned) networks."""
    agent = SACAgent.from_checkpoint(ckpt)
    widths = {k: int(t.numel()) for k, t in ckpt["hooks"]["gates"]["pruner"]["theta"].items()}
    for key, width in widths.items():
        net, _, layer = key.partition(".")
        assert getattr(agent, net).get_submodule(layer).out_features == width, key
    return widths


def test_gates_with_ofenet_run_and_resume_after_sigkill(tmp_path):
    out = tmp_path / "run"
    args = ["train", *TINY_SAC, *OFENET, *GATES, "--total-steps", "300", "--eval-every", "150",
            "--checkpoint-every", "100", "--out", str(out)]
    kill_after_checkpoint(args, out / "ckpt.pt", delay=0.5)
    killed = load_checkpoint(out / "ckpt.pt")
    assert 0 < killed["counters"]["global_step"] < 300
    assert killed["hooks"]["gates"]["cost"] == "deploy"  # the default
    _gate_widths_match_nets(killed)

    run_cli("train", "--resume", str(out))
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert torch.load(out / "ckpt.pt", weights_only=True)["counters"]["global_step"] == 300
    assert ckpt["agent"]["ofenet_updates"] == 100 + 201  # pre-training (one per warm-up step), then 1 per update
    widths = _gate_widths_match_nets(ckpt)
    assert any(k.startswith("ofenet.state_block") for k in widths) and "actor.trunk.0" in widths
    gates, before = ckpt["hooks"]["gates"], killed["hooks"]["gates"]
    assert gates["pruner"]["steps"] > before["pruner"]["steps"] and gates["history"][0] == before["history"][0]
    assert gates["finished"]  # --prune-end 1: the window closed at the last step
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["150", "300"]
    # After the window prune_ratio is the real share removed: > 0 exactly when units went.
    assert 0 <= float(rows[-1]["prune_ratio"]) < 1
    assert (float(rows[-1]["prune_ratio"]) > 0) == (len(gates["history"]) > 1)


def test_gates_without_ofenet_train_cost(tmp_path):
    out = tmp_path / "run"
    run_cli("train", *TINY_SAC, *GATES, "--gate-cost", "train", "--total-steps", "150", "--eval-every", "0",
            "--out", str(out))
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert set(_gate_widths_match_nets(ckpt)) == {"actor.trunk.0", "actor.trunk.2", "qf1.obs_in", "qf1.trunk.1",
                                                  "qf2.obs_in", "qf2.trunk.1"}
    assert ckpt["hooks"]["gates"]["pruner"]["steps"] == 50  # updates at steps 100..149; 150 ends the window


def test_units_removed_during_training_survive_resume(tmp_path):
    """Fast gates (in-process, through train_sac's hook factory) so that units close within a
    few hundred steps: the run shrinks, checkpoints at pruned widths and resumes from them."""
    def fast_gates(agent, run, cfg, prune):
        return [GateHook(agent, prune, run.total_steps, lr=0.05)]

    cfg = SACConfig(hidden=[32, 32], batch_size=32, learning_starts=100, ofenet=True, ofenet_layers=2,
                    ofenet_units=8)
    prune = PruneConfig(prune="gates", gate_lambda=1.0, prune_start=0.0, prune_end=1.0, prune_every=10)
    run = RunConfig(env="Hopper-v5", total_steps=250, eval_every=0, eval_episodes=1, checkpoint_every=250,
                    progress=False, out=str(tmp_path / "run"))
    train_sac(run, cfg, prune, make_hooks=fast_gates)
    ckpt = load_checkpoint(tmp_path / "run" / "ckpt.pt")
    history = ckpt["hooks"]["gates"]["history"]
    assert len(history) > 1 and sum(history[-1][1].values()) < sum(history[0][1].values())
    widths = _gate_widths_match_nets(ckpt)
    run.total_steps = 300
    train_sac(run, cfg, prune, resume=True, make_hooks=fast_gates)
    ckpt2 = load_checkpoint(tmp_path / "run" / "ckpt.pt")
    assert ckpt2["counters"]["global_step"] == 300
    widths2 = _gate_widths_match_nets(ckpt2)
    assert all(widths2[k] <= widths[k] for k in widths)

"""``edgerl train --prune gradual|unstructured`` end to end, and resume in the middle of pruning."""

from __future__ import annotations

import torch

from edgerl.algos.sac import SACAgent
from edgerl.checkpoint import load_checkpoint
from edgerl.prune.gradual import target_width
from tests.conftest import TINY_SAC, kill_after_checkpoint, run_cli

PRUNE = ["--prune", "gradual", "--final-ratio", "0.75", "--prune-start", "0.2", "--prune-end", "0.6",
         "--prune-every", "20", "--hidden", "48,40", "--prune-nets", "all"]


def test_gradual_pruning_shrinks_actor_critics_and_targets(tmp_path):
    out = tmp_path / "run"
    run_cli("train", *TINY_SAC, *PRUNE, "--total-steps", "400", "--eval-every", "0", "--out", str(out))
    ckpt = load_checkpoint(out / "ckpt.pt")
    agent = SACAgent.from_checkpoint(ckpt)
    # Final widths follow the schedule's final ratio exactly (targets rebuilt from the file).
    assert agent.actor.spec()["hidden"] == [target_width(48, 0.75), target_width(40, 0.75)] == [12, 10]
    for online, target in ((agent.qf1, agent.qf1_target), (agent.qf2, agent.qf2_target)):
        assert online.spec() == target.spec()
        assert online.spec()["hidden"] == [12, 10]
    # Heads keep the action dimension; the network still acts.
    assert agent.actor.mean.out_features == 3 and agent.qf1.q.out_features == 1
    assert agent.act(torch.zeros(11).numpy(), deterministic=True).shape == (3,)
    state = ckpt["hooks"]["gradual"]
    assert state["applied_ratio"] == 0.75 and state["original_widths"]["actor"]
    # Width history for plots: starts dense, shrinks monotonically, ends at the final widths.
    history = state["history"]
    assert history[0][1]["actor/trunk.0"] == 48 and history[-1][1]["actor/trunk.0"] == 12
    firsts = [w["actor/trunk.0"] for _, w in history]
    assert firsts == sorted(firsts, reverse=True) and [s for s, _ in history] == sorted(s for s, _ in history)


def test_resume_after_sigkill_mid_schedule_continues_pruning(tmp_path):
    out = tmp_path / "run"
    args = ["train", *TINY_SAC, *PRUNE, "--total-steps", "1000", "--eval-every", "0",
            "--checkpoint-every", "100", "--out", str(out)]
    kill_after_checkpoint(args, out / "ckpt.pt", delay=0.5)
    killed = load_checkpoint(out / "ckpt.pt")
    assert 0 < killed["counters"]["global_step"] < 1000
    run_cli("train", "--resume", str(out))
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["counters"]["global_step"] == 1000
    agent = SACAgent.from_checkpoint(ckpt)
    assert agent.actor.spec()["hidden"] == [12, 10]
    assert agent.qf1_target.spec()["hidden"] == agent.qf1.spec()["hidden"] == [12, 10]
    # The schedule resumed where it was: original widths are those of the first run.
    assert ckpt["hooks"]["gradual"]["original_widths"] == killed["hooks"]["gradual"]["original_widths"]


def test_unstructured_baseline_masks_but_keeps_shapes(tmp_path):
    out = tmp_path / "run"
    run_cli("train", *TINY_SAC, "--prune", "unstructured", "--final-ratio", "0.5", "--prune-start", "0.2",
            "--prune-end", "0.6", "--prune-every", "20", "--hidden", "48,40", "--total-steps", "400",
            "--eval-every", "0", "--out", str(out))
    agent = SACAgent.from_checkpoint(load_checkpoint(out / "ckpt.pt"))
    assert agent.actor.spec()["hidden"] == [48, 40]
    w = torch.cat([m.weight.flatten() for m in agent.actor.trunk if isinstance(m, torch.nn.Linear)])
    sparsity = (w == 0).float().mean().item()
    assert abs(sparsity - (1 - 0.5 ** 2)) < 0.02  # same parameter budget as group pruning at 0.5
    assert (agent.actor.mean.weight != 0).all()  # heads are not masked

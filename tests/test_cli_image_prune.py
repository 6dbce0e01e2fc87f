"""``edgerl train --algo ppo|dqn --prune gradual`` on a real ALE game with tiny budgets: widths
follow the schedule, the DQN target mirrors the online net, a run SIGKILLed mid-schedule resumes
and finishes pruning, and ``edgerl compact`` + ``edgerl export`` take the result."""

from __future__ import annotations

import csv
import json

import pytest

from edgerl.checkpoint import load_checkpoint
from edgerl.cli import main
from edgerl.prune.gradual import target_width
from edgerl.prune.schedule import CubicSchedule
from tests.conftest import kill_after_checkpoint
from tests.test_cli_image import TINY_DQN, TINY_PPO

pytest.importorskip("ale_py", reason="image agents need the Atari extra: pip install 'edgerl[atari]'")

RATIO = 0.5
PRUNE = ["--prune", "gradual", "--final-ratio", str(RATIO), "--prune-start", "0", "--prune-end", "0.75",
         "--prune-every", "1", "--round-to", "1"]  # the recipes round to 8, which leaves these tiny widths whole
EXPORTER = "legacy"
"""About 4x faster here than the dynamo exporter, which tests/export covers."""
WIDTH_025 = [[4, 4, 4], [8, 8, 8], [8, 8, 8]]
"""Impala at --width 0.25: stream and inner widths per stage."""


def _pruned(widths: list[list[int]], ratio: float) -> list[list[int]]:
    return [[target_width(w, ratio) for w in stage] for stage in widths]


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _encoder(ckpt, net: str) -> dict:
    return ckpt["agent"]["nets"][net]["spec"]["kwargs"]["encoder"]["kwargs"]


def _kill_then_resume(args: list[str], out) -> dict:
    """Run ``edgerl train ARGS`` until its first checkpoint, SIGKILL it, resume it to the end;
    returns the killed checkpoint."""
    kill_after_checkpoint(["train", *args, "--out", str(out)], out / "ckpt.pt", delay=0.2)
    killed = load_checkpoint(out / "ckpt.pt")
    assert main(["train", "--resume", str(out)]) == 0  # in-process: saves a torch import
    return killed


def test_ppo_gradual_prunes_on_schedule_resumes_and_exports(tmp_path, capsys):
    out, total = tmp_path / "ppo", 384
    args = [*TINY_PPO, *PRUNE, "--total-steps", str(total), "--eval-every", "64", "--checkpoint-every", "64"]
    killed = _kill_then_resume(args, out)
    assert 0 < killed["counters"]["global_step"] < total  # killed mid-schedule ...
    assert 0 < killed["hooks"]["gradual"]["applied_ratio"] < RATIO
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["counters"]["global_step"] == total  # ... and finished after the resume
    assert ckpt["hooks"]["gradual"]["original_widths"] == killed["hooks"]["gradual"]["original_widths"]
    assert ckpt["hooks"]["gradual"]["applied_ratio"] == RATIO
    assert _encoder(ckpt, "net")["channels"] == _pruned(WIDTH_025, RATIO) == [[2] * 3, [4] * 3, [4] * 3]
    assert _encoder(ckpt, "net")["hidden"] == [8]

    # metrics.csv: the ratio follows the cubic schedule (one pruning step per PPO iteration).
    schedule = CubicSchedule(RATIO, total, start=0.0, end=0.75)
    rows = _rows(out / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(64, total + 1, 64))
    for r in rows:
        assert float(r["prune_ratio"]) == pytest.approx(schedule.target_ratio(int(r["step"])), abs=1e-5)
    params = [int(r["params"]) for r in rows]
    assert params == sorted(params, reverse=True) and params[-1] < params[0] / 2

    assert main(["compact", str(out), "--recorded-steps", "8"]) == 0
    compact = load_checkpoint(out / "compact.pt")
    assert _encoder(compact, "net")["channels"] == _pruned(WIDTH_025, RATIO)
    capsys.readouterr()
    assert main(["export", str(out / "compact.pt"), "--recorded-steps", "8", "--exporter", EXPORTER, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parity"]["worst"] <= report["parity"]["atol"] and "parity-recorded" in report["checks"]
    assert (out / "policy.onnx").stat().st_size == report["size_bytes"] and (out / "contract.json").exists()


def test_dqn_gradual_prunes_target_with_online_and_resumes(tmp_path):
    out, total = tmp_path / "dqn", 240
    args = [*TINY_DQN, *PRUNE, "--total-steps", str(total), "--eval-every", "0", "--checkpoint-every", "80"]
    killed = _kill_then_resume(args, out)
    assert 0 < killed["counters"]["global_step"] < total
    assert 0 < killed["hooks"]["gradual"]["applied_ratio"] < RATIO
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["counters"]["global_step"] == total and ckpt["hooks"]["gradual"]["applied_ratio"] == RATIO
    nets = ckpt["agent"]["nets"]
    assert nets["target_network"]["spec"] == nets["q_network"]["spec"]  # the target mirrors the online net
    assert {k: v.shape for k, v in nets["target_network"]["state"].items()} == \
        {k: v.shape for k, v in nets["q_network"]["state"].items()}
    assert _encoder(ckpt, "q_network")["channels"] == _pruned(WIDTH_025, RATIO)
    assert nets["q_network"]["spec"]["kwargs"]["n_actions"] == 4  # the Q head is never pruned

    assert main(["compact", str(out), "--recorded-steps", "8"]) == 0
    assert main(["export", str(out / "compact.pt"), "--recorded-steps", "8", "--exporter", EXPORTER]) == 0
    assert (out / "policy.onnx").stat().st_size > 0

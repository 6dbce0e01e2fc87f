"""``edgerl distill`` as a user types it (in-process ``edgerl.cli.main``, to keep it fast):
teacher -> distill -> compact -> export -> deploy -> run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgerl.algos.replay import ReplayBuffer
from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.cli import main
from tests.distill.conftest import sac_teacher, teacher_states


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, hopper_info):
    """A tiny SAC train checkpoint with a replay buffer of 300 states beside it."""
    run = tmp_path_factory.mktemp("distill") / "run"
    run.mkdir()
    ckpt = sac_teacher(run / "ckpt.pt", hopper_info)
    buf = ReplayBuffer(1000, (11,), (3,))
    obs = teacher_states(301, seed=3).astype(np.float32)
    for i in range(300):
        buf.add(obs[i], np.zeros(3, np.float32), 0.0, obs[i + 1], False)
    buf.save(run / "replay-300.npz")
    payload = load_checkpoint(ckpt)
    payload["replay"] = "replay-300.npz"
    save_checkpoint(ckpt, payload)
    return run


def test_distill_compact_deploy_run(teacher, tmp_path, capsys):
    student = tmp_path / "student.pt"
    assert main(["distill", str(teacher), "-o", str(student), "--widths", "16,16", "--rounds", "1",
                 "--round-states", "200", "--steps-per-round", "150", "--eval-episodes", "2",
                 "--json", str(tmp_path / "d.json"), "--progress", "false"]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "d.json").read_text())
    # Round 0 read the replay buffer beside ckpt.pt; round 1 added the student's own states.
    assert "300 replay states" in out and [h["states"] for h in report["history"]] == [300, 500]
    assert report["teacher_return"]["n"] == report["student_return"]["n"] == 2
    assert report["student_widths"]["actor"]["trunk.0"] == 16 and report["student_params"] < report["teacher_params"]
    assert "95% interval" in out and "of the teacher" in out
    assert main(["compact", str(student), "-o", str(tmp_path / "compact.pt"), "--recorded-steps", "32"]) == 0
    assert main(["export", str(tmp_path / "compact.pt"), "-o", str(tmp_path / "p.onnx"), "--recorded-steps", "16"]) == 0
    assert (tmp_path / "p.onnx").stat().st_size > 0
    bundle = tmp_path / "bundle"
    assert main(["deploy", str(tmp_path / "compact.pt"), "--target", "x86-cpu", "-o", str(bundle),
                 "--recorded-steps", "32"]) == 0
    contract = json.loads((bundle / "contract.json").read_text())
    assert contract["baked_in"][0] == "observation_normalizer" and "action_rescale" in contract["baked_in"]
    assert main(["run", str(bundle), "--episodes", "2", "--max-steps", "100", "--json", str(tmp_path / "run.json")]) == 0
    res = json.loads((tmp_path / "run.json").read_text())
    np.testing.assert_allclose(res["runtime_returns"], res["torch_returns"], rtol=1e-4, atol=1e-3)


def test_distill_errors_are_one_line(teacher, tmp_path, capsys):
    assert main(["distill", str(teacher), "-o", str(tmp_path / "s.pt"), "--loss", "huber"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgerl distill: error: --loss 'huber'") and err.count("\n") == 1
    assert main(["distill", str(tmp_path / "nope")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err

"""Slow learning tests (``make test-all``): SAC learns Pendulum-v1 within a stated budget, and a
distilled 32x32 student keeps at least 90% of the trained teacher's return on the same seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgerl.checkpoint import load_checkpoint
from edgerl.envs import make_env
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

STEPS = 8000
"""SAC's budget on Pendulum-v1 (1,000 random warm-up steps, then one update per step)."""
SOLVED = -400.0
"""Return SAC must reach: a random policy scores about -1,200, a good one -150 to -200."""


@pytest.fixture(scope="module")
def pendulum_teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("learn") / "pendulum"
    run_cli("train", "--env", "Pendulum-v1", "--hidden", "64,64", "--total-steps", str(STEPS),
            "--learning-starts", "1000", "--eval-every", "0", "--eval-episodes", "10", "--seed", "1",
            "--progress", "false", "--out", str(out), timeout=1800)
    return out


def _random_return(episodes: int, seed: int) -> float:
    env = make_env("Pendulum-v1")
    rng = np.random.default_rng(0)
    total = 0.0
    for i in range(episodes):
        env.reset(seed=seed + i)
        done = False
        while not done:
            _, r, term, trunc, _ = env.step(rng.uniform(-2.0, 2.0, size=1).astype(np.float32))
            total += float(r)
            done = term or trunc
    env.close()
    return total / episodes


def test_sac_learns_pendulum_within_budget(pendulum_teacher):
    ret = load_checkpoint(pendulum_teacher / "ckpt.pt")["eval"]["return_mean"]
    assert np.isfinite(ret) and ret >= SOLVED, f"SAC reached {ret:.0f} after {STEPS} steps (want >= {SOLVED})"


def test_distilled_student_keeps_90_percent_of_the_return(pendulum_teacher, tmp_path):
    report_path = tmp_path / "d.json"
    run_cli("distill", str(pendulum_teacher), "-o", str(tmp_path / "student.pt"), "--widths", "32,32",
            "--eval-episodes", "20", "--progress", "false", "--json", str(report_path), timeout=1800)
    report = json.loads(report_path.read_text())
    teacher, student = report["teacher_return"]["mean"], report["student_return"]["mean"]
    # Pendulum's returns are negative: measure the share of the teacher's gain over a random policy
    # that the student keeps, on the same env seeds.
    base = _random_return(20, report["eval_seeds"][0])
    assert teacher > base + 200, (teacher, base)
    kept = (student - base) / (teacher - base)
    assert np.isfinite(kept) and kept >= 0.9, f"student {student:.0f}, teacher {teacher:.0f}, random {base:.0f}"

"""Distillation of tiny image teachers (PPO logits, DQN Q-values) with the temperature KL of
Rusu et al. 2016: the loss falls and the student's greedy actions agree with the teacher's on
held-out frames more than chance and more than the untrained student's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.distill import DistillConfig, distill
from edgerl.distill.student import build_student, student_nets
from edgerl.export import policy_from_checkpoint
from tests.export.test_image_agents import _image_ckpt

pytest.importorskip("ale_py", reason="the image agents need the Atari extra: pip install 'edgerl[atari]'")


def _frames(n: int, seed: int) -> np.ndarray:
    """Frames that vary in a few factors (per-channel brightness, a bright square's position), so
    a student can learn the teacher's function of them from a few hundred examples."""
    rng = np.random.default_rng(seed)
    frames = np.broadcast_to(rng.integers(0, 160, size=(n, 4, 1, 1)), (n, 4, 32, 32)).copy()
    for i, (r, c) in enumerate(rng.integers(0, 24, size=(n, 2))):
        frames[i, :, r:r + 8, c:c + 8] = 255
    return frames.astype(np.uint8)


def _agreement(a, b, frames: np.ndarray) -> float:
    with torch.no_grad():
        x = torch.as_tensor(frames)
        return float((a(x) == b(x)).float().mean())


def _spread_teacher(path, algo: str) -> None:
    """Re-centre and scale the untrained teacher's head on the training frames, so its greedy
    action varies from frame to frame (a random network picks nearly one action everywhere)."""
    net, head = {"ppo": ("net", "actor"), "dqn": ("q_network", "q")}[algo]
    ckpt = load_checkpoint(path)
    with torch.no_grad():
        scores = policy_from_checkpoint(ckpt).scores(torch.as_tensor(_frames(400, seed=1)))
    state = ckpt["agent"]["nets"][net]["state"]
    scale = 1.0 / scores.std(0).mean()
    state[f"{head}.weight"] *= scale
    state[f"{head}.bias"] = (state[f"{head}.bias"] - scores.mean(0)) * scale
    save_checkpoint(path, ckpt)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_image_student_learns_the_teachers_greedy_actions(tmp_path, algo):
    path, _ = _image_ckpt(tmp_path / "ckpt.pt", algo)
    _spread_teacher(path, algo)
    np.savez(tmp_path / "obs.npz", obs=_frames(400, seed=1))
    cfg = DistillConfig(widths=[16], channel_scale=0.5, steps_per_round=100, batch_size=32, lr=1e-3,
                        eval_episodes=0, progress=False)
    report = distill(path, tmp_path / "student.pt", cfg, use_env=False, observations=tmp_path / "obs.npz",
                     log=lambda _: None)
    first, last = report.history[0]["first_loss"], report.history[-1]["loss"]
    assert np.isfinite(last) and last < 0.85 * first, report.history  # measured: 0.30x (PPO), 0.76x (DQN)
    teacher = policy_from_checkpoint(load_checkpoint(path))
    student_ckpt = load_checkpoint(tmp_path / "student.pt")
    student = policy_from_checkpoint(student_ckpt)
    assert student_ckpt["kind"] == "policy" and student.discrete
    assert report.student_params < report.teacher_params
    held_out = _frames(300, seed=7)
    with torch.no_grad():
        assert len(torch.unique(teacher(torch.as_tensor(held_out)))) >= 3
    torch.manual_seed(123)
    untrained = build_student(teacher, student_ckpt, student_nets(teacher, student_ckpt["env"], [16], 0.5), None).eval()
    n_actions = student_ckpt["env"]["action_space"]["n"]
    agree, base = _agreement(student, teacher, held_out), _agreement(untrained, teacher, held_out)
    # Measured: 0.72 vs 0.28 untrained (PPO), 0.54 vs 0.23 (DQN); chance is 0.25.
    assert agree > max(base, 1.0 / n_actions) + 0.1, (agree, base)
    # The student deploys and runs like any image policy: uint8 frames in, the same greedy actions
    # through the runtime's bundle as in torch, episode by episode.
    from edgerl.commands.deploy import deploy
    from edgerl.commands.run import run_bundle

    deploy(tmp_path / "student.pt", "x86-cpu", tmp_path / "bundle", recorded_steps=8)
    res = run_bundle(tmp_path / "bundle", None, 2, 0, None, str(tmp_path / "student.pt"), True, 30)
    assert len(res["runtime_returns"]) == 2 and res["runtime_returns"] == res["torch_returns"]


def test_run_rolls_an_image_bundle_with_its_recorded_preprocessing(tmp_path):
    """``edgerl run`` on an image bundle rolls the frames the policy trained on: from the training
    checkpoint, or (without it) from the contract's ``observation.preprocessing``; an env that
    observes something else is a one-line error before anything is rolled."""
    from edgerl.commands.deploy import deploy
    from edgerl.commands.run import run_bundle
    from edgerl.errors import ConfigError

    path, _ = _image_ckpt(tmp_path / "ckpt.pt", "dqn")
    deploy(path, "x86-cpu", tmp_path / "bundle", recorded_steps=8)
    contract = json.loads((tmp_path / "bundle" / "contract.json").read_text())
    assert contract["observation"]["preprocessing"] == load_checkpoint(path)["env"]["preprocessing"]
    res = run_bundle(tmp_path / "bundle", None, 2, 0, None, None, True, 20)  # the contract names the checkpoint
    assert res["runtime_returns"] == res["torch_returns"]
    path.rename(tmp_path / "moved.pt")
    alone = run_bundle(tmp_path / "bundle", None, 2, 0, None, None, True, 20)  # no checkpoint: the contract's frames
    assert alone["runtime_returns"] == res["runtime_returns"] and "not found" in alone["torch_note"]
    named = run_bundle(tmp_path / "bundle", "ALE/Breakout-v5", 2, 0, None, None, True, 20)  # --env its own game
    assert named["runtime_returns"] == res["runtime_returns"]
    with pytest.raises(ConfigError, match=r"CartPole-v1 is not an Atari env, but the policy observes preprocessed "
                                          r"Atari frames \(4 x 32x32\); pass an ALE/... env") as e:
        run_bundle(tmp_path / "bundle", "CartPole-v1", 1, 0, None, None, True, 20)
    assert "\n" not in str(e.value)
    (tmp_path / "moved.pt").write_bytes(b"not a checkpoint")  # --no-compare reads the contract, not the checkpoint
    quick = run_bundle(tmp_path / "bundle", None, 2, 0, None, str(tmp_path / "moved.pt"), False, 20)
    assert quick["runtime_returns"] == res["runtime_returns"]

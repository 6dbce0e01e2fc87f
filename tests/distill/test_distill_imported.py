"""Imported policies teach (``edgerl import`` -> ``edgerl distill``): an rsl_rl actor with an env-side
action chain (clip -> scale -> offset, not tanh) and a CleanRL DQN Q-network (an ``mlp`` net). The
student keeps the teacher's action chain and activation, at the student's widths, and fits the
teacher on held-out states far better than an untrained student of the same shape does."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.distill import DistillConfig, distill
from edgerl.export.policy import policy_from_checkpoint
from edgerl.export.wrappers import ActionChainPolicy, ArgmaxPolicy
from edgerl.interop.api import import_policy

OBS, ACT, N_ACTIONS = 6, 3, 4
CFG = DistillConfig(widths=[24, 24], steps_per_round=400, batch_size=128, rounds=0, progress=False)


def _states(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 1.0, size=(n, OBS)).astype(np.float32)


def _actions(ckpt_path, obs: np.ndarray) -> np.ndarray:
    policy = policy_from_checkpoint(load_checkpoint(ckpt_path))
    with torch.no_grad():
        return policy(torch.as_tensor(obs)).numpy()


def _distil_offline(tmp_path, payload: dict, seed: int):
    """Save an imported teacher as ``teacher.pt``, distil it on 2000 logged states alone (no env)
    into ``student.pt``, and return the student's deployed policy."""
    save_checkpoint(tmp_path / "teacher.pt", payload)
    np.savez(tmp_path / "obs.npz", obs=_states(2000, seed=seed))
    distill(tmp_path / "teacher.pt", tmp_path / "student.pt", CFG, use_env=False,
            observations=tmp_path / "obs.npz", log=lambda _: None)
    return policy_from_checkpoint(load_checkpoint(tmp_path / "student.pt"))


def test_rsl_rl_teacher_with_an_action_chain(tmp_path):
    torch.manual_seed(3)
    actor = nn.Sequential(nn.Linear(OBS, 32), nn.ELU(), nn.Linear(32, 32), nn.ELU(), nn.Linear(32, ACT))
    torch.save({"model_state_dict": {**{f"actor.{k}": v for k, v in actor.state_dict().items()},
                                     "std": torch.ones(ACT)}}, tmp_path / "model_1.pt")
    (tmp_path / "io.yaml").write_text("action:\n  clip: 0.4\n  scale: 0.5\n  offset: [0.1, -0.2, 0.3]\n")
    payload, _ = import_policy(tmp_path / "model_1.pt", "rsl_rl", io_path=tmp_path / "io.yaml")
    student = _distil_offline(tmp_path, payload, seed=1)
    assert isinstance(student, ActionChainPolicy) and student.net.spec()["hidden"] == [24, 24]
    assert student.net.spec()["activation"] == "elu"
    teacher = policy_from_checkpoint(load_checkpoint(tmp_path / "teacher.pt"))
    assert torch.equal(student.clip_high, teacher.clip_high) and torch.equal(student.offset, teacher.offset)

    held = _states(500, seed=9)
    want = _actions(tmp_path / "teacher.pt", held)
    err = float(np.abs(_actions(tmp_path / "student.pt", held) - want).mean())
    torch.manual_seed(0)  # an untrained student of the same shape, through the same chain
    untrained = ActionChainPolicy(type(student.net)(**student.net.spec()), None, act_dim=ACT, clip_low=[-0.4] * ACT,
                                  clip_high=[0.4] * ACT, scale=[0.5] * ACT, offset=[0.1, -0.2, 0.3])
    with torch.no_grad():
        base = float(np.abs(untrained(torch.as_tensor(held)).numpy() - want).mean())
    assert err <= 0.25 * base, (err, base)  # fails on NaN too


def test_cleanrl_dqn_teacher_gets_an_mlp_student(tmp_path):
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(OBS, 48), nn.ReLU(), nn.Linear(48, 48), nn.ReLU(), nn.Linear(48, N_ACTIONS))
    torch.save({f"network.{k}": v for k, v in net.state_dict().items()}, tmp_path / "dqn.cleanrl_model")
    payload, _ = import_policy(tmp_path / "dqn.cleanrl_model", "cleanrl")
    student = _distil_offline(tmp_path, payload, seed=2)
    assert isinstance(student, ArgmaxPolicy) and student.net.spec()["hidden"] == [24, 24]
    held = _states(1000, seed=8)
    want = _actions(tmp_path / "teacher.pt", held)
    assert len(np.unique(want)) > 1  # a teacher with one action would make agreement meaningless
    agreement = float(np.mean(_actions(tmp_path / "student.pt", held) == want))
    chance = float(np.max(np.bincount(want, minlength=N_ACTIONS)) / len(want))  # always the most common action
    assert agreement >= max(0.8, chance + 0.1), (agreement, chance)

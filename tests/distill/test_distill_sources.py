"""Teachers and starting points: an OFENet teacher gets a plain MLP student; ``--init`` starts
from a pruned policy's networks; a policy checkpoint teaches like a train checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.distill import DistillConfig, distill
from edgerl.errors import CheckpointError
from edgerl.export import policy_from_checkpoint
from tests.distill.conftest import sac_teacher, teacher_states
from tests.export.conftest import sac_payload

CFG = DistillConfig(widths=[16], steps_per_round=50, batch_size=64, progress=False)


def _obs(tmp_path) -> str:
    np.savez(tmp_path / "obs.npz", obs=teacher_states(300, seed=2))
    return str(tmp_path / "obs.npz")


def test_ofenet_teacher_gets_a_plain_mlp_student(tmp_path, hopper_info):
    torch.manual_seed(0)
    agent = SACAgent(SACConfig(hidden=[32, 32], obs_norm=True, ofenet=True, ofenet_layers=2, ofenet_units=8),
                     obs_dim=11, act_dim=3)
    save_checkpoint(tmp_path / "ckpt.pt", sac_payload(agent, hopper_info))
    teacher = policy_from_checkpoint(load_checkpoint(tmp_path / "ckpt.pt"))
    assert teacher.features is not None
    distill(tmp_path / "ckpt.pt", tmp_path / "s.pt", CFG, use_env=False, observations=_obs(tmp_path), log=lambda _: None)
    ckpt = load_checkpoint(tmp_path / "s.pt")
    assert set(ckpt["agent"]["nets"]) == {"actor"}
    student = policy_from_checkpoint(ckpt)
    assert student.features is None and student.net.spec() == {"obs_dim": 11, "act_dim": 3, "hidden": [16]}


def test_init_starts_from_a_pruned_policy_and_policy_checkpoints_teach(tmp_path, hopper_info):
    teacher_path = sac_teacher(tmp_path / "ckpt.pt", hopper_info)
    small = tmp_path / "small"
    small.mkdir()
    # A "pruned" policy: a policy checkpoint of an 8x6 actor (as compact writes one).
    torch.manual_seed(1)
    pruned = SACAgent(SACConfig(hidden=[8, 6], obs_norm=True), obs_dim=11, act_dim=3)
    from edgerl.export.policy import policy_checkpoint_payload

    save_checkpoint(small / "compact.pt", policy_checkpoint_payload(
        "sac", hopper_info, {}, pruned.deployed_nets()))
    before = policy_from_checkpoint(load_checkpoint(small / "compact.pt")).net.mean.weight.clone()
    report = distill(teacher_path, tmp_path / "s.pt", CFG, use_env=False, observations=_obs(tmp_path),
                     init=small / "compact.pt", log=lambda _: None)
    student = policy_from_checkpoint(load_checkpoint(tmp_path / "s.pt"))
    assert student.net.spec()["hidden"] == [8, 6] and report.student_widths["actor"]["trunk.0"] == 8
    assert not torch.equal(student.net.mean.weight, before)  # trained from there
    # The student (a policy checkpoint) can teach in turn.
    distill(tmp_path / "s.pt", tmp_path / "s2.pt", CFG, use_env=False, observations=_obs(tmp_path), log=lambda _: None)
    assert load_checkpoint(tmp_path / "s2.pt")["source"]["kind"] == "policy"


def test_init_of_another_kind_is_refused(tmp_path, hopper_info):
    from tests.export.test_image_agents import _image_ckpt

    pytest.importorskip("ale_py", reason="needs the Atari extra")
    teacher_path = sac_teacher(tmp_path / "ckpt.pt", hopper_info)
    dqn, _ = _image_ckpt(tmp_path / "dqn.pt", "dqn")
    with pytest.raises(CheckpointError, match="initialise from a checkpoint of the teacher's kind"):
        distill(teacher_path, tmp_path / "s.pt", CFG, use_env=False, observations=_obs(tmp_path), init=dqn,
                log=lambda _: None)

"""Recurrent teachers (an imported rsl_rl LSTM/GRU actor) distil into a smaller recurrent student.

The student keeps the teacher's memory kind and action chain at its own sizes, trains on
sequences (burn-in, then backpropagation through time) and is checked against the teacher's own
sequence inference (the deployed function, ``torch_actions``) on a held-out stream with episode
starts: far closer than an untrained student of the same shape, and closer than the same student
acting with its memory wiped every step (where the teacher's actions depend on its memory).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.distill import DistillConfig, distill
from edgerl.errors import CheckpointError, ConfigError
from edgerl.export.observations import torch_actions
from edgerl.export.policy import policy_from_checkpoint
from edgerl.export.wrappers import ActionChainPolicy
from edgerl.interop.api import import_policy

OBS, ACT, MEMORY = 5, 2, 16
HH_SCALE = 3.0
"""The teacher's recurrent weights times this: its actions then depend on the past, not only the present."""
CFG = DistillConfig(widths=[16], rnn_hidden=8, steps_per_round=800, batch_size=256, sequence_length=16, burn_in=8,
                    rounds=0, lr=3e-3, progress=False)


def _rsl_rl_teacher(tmp_path, kind: str, env_id: str | None = None, obs: int = OBS, act: int = ACT) -> dict:
    """An rsl_rl ``ActorCriticRecurrent`` checkpoint (``memory_a.rnn`` + ``actor`` MLP), imported."""
    torch.manual_seed(5)
    rnn = (nn.LSTM if kind == "lstm" else nn.GRU)(obs, MEMORY, 1)
    with torch.no_grad():
        rnn.weight_hh_l0.mul_(HH_SCALE)
    mlp = nn.Sequential(nn.Linear(MEMORY, 32), nn.ELU(), nn.Linear(32, act))
    with torch.no_grad():
        mlp[2].weight.mul_(3.0)
    model = {**{f"memory_a.rnn.{k}": v for k, v in rnn.state_dict().items()},
             **{f"memory_c.rnn.{k}": torch.zeros_like(v) for k, v in rnn.state_dict().items()},
             **{f"actor.{k}": v for k, v in mlp.state_dict().items()}, "std": torch.ones(act),
             "critic.0.weight": torch.zeros(1, MEMORY), "critic.0.bias": torch.zeros(1)}
    torch.save({"model_state_dict": model, "optimizer_state_dict": {}, "iter": 1, "infos": None}, tmp_path / "model_1.pt")
    (tmp_path / "io.yaml").write_text("action:\n  clip: 1.0\n")
    payload, _ = import_policy(tmp_path / "model_1.pt", "rsl_rl", env_id=env_id, io_path=tmp_path / "io.yaml")
    return payload


def _stream(n: int, seed: int, every: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """Noisy observations (what the teacher remembers of them matters) and an episode start every
    ``every`` steps."""
    obs = np.random.default_rng(seed).normal(0.0, 1.0, size=(n, OBS)).astype(np.float32)
    starts = np.zeros(n, dtype=bool)
    starts[::every] = True
    return obs, starts


def _gap(policy, teacher, obs: np.ndarray, starts: np.ndarray) -> float:
    """Mean |action difference| of ``policy`` run with ``starts`` from the teacher run with the true
    episode starts (every 150 steps)."""
    want = torch_actions(teacher, obs, np.dtype(np.float32), np.arange(len(obs)) % 150 == 0)
    return float(np.abs(torch_actions(policy, obs, np.dtype(np.float32), starts) - want).mean())


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_teacher_gets_a_smaller_recurrent_student(tmp_path, kind):
    save_checkpoint(tmp_path / "teacher.pt", _rsl_rl_teacher(tmp_path, kind))
    obs, starts = _stream(6000, seed=1)
    np.savez(tmp_path / "obs.npz", obs=obs, start=starts)
    report = distill(tmp_path / "teacher.pt", tmp_path / "student.pt", CFG, use_env=False,
                     observations=tmp_path / "obs.npz", log=lambda _: None)
    teacher = policy_from_checkpoint(load_checkpoint(tmp_path / "teacher.pt"))
    student = policy_from_checkpoint(load_checkpoint(tmp_path / "student.pt"))
    assert isinstance(student, ActionChainPolicy) and student.recurrent is not None
    assert student.recurrent.rnn_type == kind and student.recurrent.state_shape == (1, 8)
    assert student.net.spec()["hidden"] == [16] and report.student_params < report.teacher_params
    assert torch.equal(student.clip_high, teacher.clip_high)

    held, held_starts = _stream(3000, seed=9)
    wiped = np.ones(len(held), dtype=bool)  # the memory zeroed before every step
    err = _gap(student, teacher, held, held_starts)
    assert _gap(teacher, teacher, held, wiped) >= 2 * err, "the teacher's actions must depend on its memory"
    torch.manual_seed(0)  # an untrained student of the same shape, through the same chain
    untrained = ActionChainPolicy(type(student.net)(**student.net.spec()), student.normalizer, act_dim=ACT,
                                  clip_low=[-1.0] * ACT, clip_high=[1.0] * ACT)
    assert err <= 0.3 * _gap(untrained, teacher, held, held_starts), err  # fails on NaN too
    amnesic = _gap(student, teacher, held, wiped)
    assert err < 0.75 * amnesic, (err, amnesic)  # the student uses its memory as the teacher does
    assert report.heldout["action_mae"] < 0.075, report.heldout  # measured: LSTM 0.014, GRU 0.049


def test_recurrent_student_rolls_its_own_states_and_exports(tmp_path):
    """With an env: round 0 on the teacher's rollouts, one DAgger round on the student's own, the
    return compared on the same seeds, and the student exported with its state (ONNX parity)."""
    from edgerl.export import export_policy

    save_checkpoint(tmp_path / "teacher.pt", _rsl_rl_teacher(tmp_path, "lstm", env_id="Pendulum-v1", obs=3, act=1))
    cfg = DistillConfig(widths=[8], rnn_hidden=4, steps_per_round=30, batch_size=64, sequence_length=8, burn_in=4,
                        rounds=1, round_states=400, eval_episodes=1, progress=False)
    report = distill(tmp_path / "teacher.pt", tmp_path / "student.pt", cfg, log=lambda _: None)
    assert report.states == 400 - 20 + 400 and [h["round"] for h in report.history] == [0, 1]
    assert np.isfinite(report.student_return["mean"]) and np.isfinite(report.teacher_return["mean"])
    info = export_policy(tmp_path / "student.pt", tmp_path / "student.onnx")  # raises on a parity gap
    contract = json.loads(open(info.contract_path).read())
    assert contract["recurrent"]["kind"] == "lstm"


def test_logged_start_flags_of_another_length_are_refused(tmp_path):
    save_checkpoint(tmp_path / "teacher.pt", _rsl_rl_teacher(tmp_path, "gru"))
    obs, _ = _stream(200, seed=2)
    np.savez(tmp_path / "obs.npz", obs=obs, start=np.zeros(199, dtype=bool))
    with pytest.raises(ConfigError, match="'start' must be a bool array of the 200"):
        distill(tmp_path / "teacher.pt", tmp_path / "student.pt", CFG, use_env=False,
                observations=tmp_path / "obs.npz", log=lambda _: None)
    assert not (tmp_path / "student.pt").exists()


def test_killed_recurrent_run_continues_to_the_same_student(tmp_path):
    """The data file keeps the episode starts (with the held-out tail's own start): a resumed run
    trains on the same windows and ends with the same student; an older state is refused."""
    from edgerl.distill.api import state_paths
    from tests.distill.conftest import Killed, kill_at

    save_checkpoint(tmp_path / "teacher.pt", _rsl_rl_teacher(tmp_path, "gru"))
    obs, starts = _stream(600, seed=3, every=70)
    np.savez(tmp_path / "obs.npz", obs=obs, start=starts)
    cfg = DistillConfig(widths=[8], rnn_hidden=4, steps_per_round=30, batch_size=32, sequence_length=8, burn_in=4,
                        rounds=0, checkpoint_every=10, holdout=0.1, progress=False)
    run = {"use_env": False, "observations": tmp_path / "obs.npz"}
    whole = distill(tmp_path / "teacher.pt", tmp_path / "a" / "s.pt", cfg, log=lambda _: None, **run)

    kill_at_round_end = kill_at("round 0:")
    out = tmp_path / "b" / "s.pt"
    with pytest.raises(Killed):
        distill(tmp_path / "teacher.pt", out, cfg, log=kill_at_round_end, **run)
    state, data = state_paths(out)
    with np.load(data) as d:
        saved = d["starts"]
        assert saved[-60] and np.array_equal(saved[:-60], starts[:-60]) and np.array_equal(d["holdout"][-60:], [True] * 60)
    assert load_checkpoint(state)["distill_state"]["step"] == 20
    lines: list[str] = []
    resumed = distill(tmp_path / "teacher.pt", out, cfg, log=lines.append, **run)
    assert any(line.startswith("continuing") for line in lines)
    a = policy_from_checkpoint(load_checkpoint(tmp_path / "a" / "s.pt"))
    b = policy_from_checkpoint(load_checkpoint(out))
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    assert resumed.heldout == whole.heldout and resumed.heldout["states"] == 60

    with pytest.raises(Killed):
        distill(tmp_path / "teacher.pt", out, cfg, log=kill_at_round_end, **run)
    old = load_checkpoint(state)
    old["distill_state"]["fingerprint"]["version"] = 1  # a state an older edgerl wrote (no 'starts')
    save_checkpoint(state, old)
    with pytest.raises(ConfigError, match="version 1, this edgerl reads"):
        distill(tmp_path / "teacher.pt", out, cfg, log=lambda _: None, **run)


def test_init_of_another_memory_kind_is_refused(tmp_path):
    save_checkpoint(tmp_path / "teacher.pt", _rsl_rl_teacher(tmp_path, "gru"))
    (tmp_path / "lstm").mkdir()
    save_checkpoint(tmp_path / "init.pt", _rsl_rl_teacher(tmp_path / "lstm", "lstm"))
    obs, starts = _stream(200, seed=2)
    np.savez(tmp_path / "obs.npz", obs=obs, start=starts)
    with pytest.raises(CheckpointError, match="--init has an LSTM memory, the teacher a GRU memory"):
        distill(tmp_path / "teacher.pt", tmp_path / "student.pt", CFG, use_env=False, init=tmp_path / "init.pt",
                observations=tmp_path / "obs.npz", log=lambda _: None)


def test_feed_forward_teacher_ignores_logged_start_flags(tmp_path, hopper_info):
    """'start' means nothing to a feed-forward teacher: a log with flags of any kind trains the
    student it trains without them."""
    from tests.distill.conftest import sac_teacher, teacher_states

    teacher = sac_teacher(tmp_path / "ckpt.pt", hopper_info)
    obs = teacher_states(300, seed=4)
    np.savez(tmp_path / "plain.npz", obs=obs)
    np.savez(tmp_path / "flags.npz", obs=obs, start=np.arange(300) % 7)  # ints, not bools
    cfg = DistillConfig(widths=[8], steps_per_round=20, batch_size=32, rounds=0, eval_episodes=0, progress=False)
    students = []
    for name in ("plain", "flags"):
        distill(teacher, tmp_path / f"{name}.pt", cfg, use_env=False, observations=tmp_path / f"{name}.npz",
                log=lambda _: None)
        students.append(policy_from_checkpoint(load_checkpoint(tmp_path / f"{name}.pt")))
    for (name, x), (_, y) in zip(students[0].state_dict().items(), students[1].state_dict().items(), strict=True):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("field, value, msg", [("sequence_length", 0, "--sequence-length must be at least 1, got 0"),
                                               ("burn_in", -1, "--burn-in must be at least 0, got -1"),
                                               ("rnn_hidden", -2, "--rnn-hidden must be at least 0, got -2")])
def test_bad_sequence_settings_are_one_line_errors(field, value, msg):
    from dataclasses import replace

    from edgerl.distill.api import check_config

    with pytest.raises(ConfigError, match=msg):
        check_config(replace(CFG, **{field: value}))


def test_unreadable_logged_start_flags_are_one_line_errors(tmp_path):
    save_checkpoint(tmp_path / "teacher.pt", _rsl_rl_teacher(tmp_path, "gru"))
    obs, _ = _stream(200, seed=2)
    np.savez(tmp_path / "obs.npz", obs=obs, start=np.array([None] * 200, dtype=object))  # pickled
    with pytest.raises(ConfigError, match="cannot read 'start'.*save it as a bool array of the 200"):
        distill(tmp_path / "teacher.pt", tmp_path / "student.pt", CFG, use_env=False,
                observations=tmp_path / "obs.npz", log=lambda _: None)

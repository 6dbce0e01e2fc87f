"""``edgerl train --algo ppo|dqn`` end to end on a real ALE game with tiny budgets: run, checkpoint,
resume, recipes one flag away, and config errors."""

from __future__ import annotations

import csv
import json

import pytest

from edgerl.checkpoint import load_checkpoint
from edgerl.cli import main
from tests.conftest import REPO, run_cli

TINY_IMAGE = ["--env", "ALE/Breakout-v5", "--frame-size", "36", "--max-episode-steps", "40", "--width", "0.25",
              "--hidden", "16", "--num-envs", "2", "--eval-episodes", "1", "--progress", "false"]
TINY_PPO = [*TINY_IMAGE, "--algo", "ppo", "--num-steps", "32", "--num-minibatches", "2", "--update-epochs", "1"]
TINY_DQN = [*TINY_IMAGE, "--algo", "dqn", "--net", "impala", "--impoola", "--prioritized", "--batch-size", "8",
            "--buffer-size", "400", "--learning-starts", "60", "--target-update", "50"]


def _steps(path) -> list[int]:
    with open(path, newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def test_ppo_run_then_resume(tmp_path):
    out = tmp_path / "ppo"
    proc = run_cli("train", *TINY_PPO, "--total-steps", "128", "--eval-every", "64", "--checkpoint-every", "64",
                   "--out", str(out))
    assert "training finished" in proc.stdout
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["algo"] == "ppo" and ckpt["kind"] == "train" and ckpt["replay"] is None
    assert ckpt["counters"]["global_step"] == 128 and ckpt["agent"]["updates"] == 2
    assert ckpt["env"]["observation_space"]["shape"] == [4, 36, 36]
    assert ckpt["env"]["observation_space"]["dtype"] == "uint8"
    assert ckpt["env"]["action_space"] == {"kind": "discrete", "n": 4, "shape": [], "dtype": "int64", "start": 0}
    assert ckpt["env"]["preprocessing"]["frame_stack"] == 4 and ckpt["env"]["preprocessing"]["frame_size"] == 36
    assert "lr" not in ckpt["env"]["preprocessing"]  # env settings only; hyperparameters live in config
    encoder = ckpt["agent"]["nets"]["net"]["spec"]["kwargs"]["encoder"]
    assert encoder["type"] == "impala_cnn" and encoder["kwargs"]["channels"] == [[4, 4, 4], [8, 8, 8], [8, 8, 8]]
    assert ckpt["config"]["algo"]["num_steps"] == 32 and ckpt["config"]["algo"]["width"] == 0.25
    assert _steps(out / "metrics.csv") == [64, 128]

    assert main(["train", "--resume", str(out), "--total-steps", "256"]) == 0  # in-process: saves a torch import
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["counters"]["global_step"] == 256 and ckpt["agent"]["updates"] == 4
    assert ckpt["agent"]["reward_norm"]["count"] > 256  # statistics carried over the resume
    assert _steps(out / "metrics.csv") == [64, 128, 192, 256]


def test_dqn_run_then_resume(tmp_path):
    out = tmp_path / "dqn"
    proc = run_cli("train", *TINY_DQN, "--total-steps", "120", "--eval-every", "120", "--checkpoint-every", "120",
                   "--out", str(out))
    assert "training finished" in proc.stdout
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["algo"] == "dqn" and ckpt["counters"]["global_step"] == 120
    assert ckpt["agent"]["updates"] == (120 - 60) // 4
    assert set(ckpt["agent"]["nets"]) == {"q_network", "target_network"}
    spec = ckpt["agent"]["nets"]["q_network"]["spec"]
    assert spec == ckpt["agent"]["nets"]["target_network"]["spec"]
    assert spec["kwargs"]["encoder"]["kwargs"]["impoola"] is True
    assert (out / ckpt["replay"]).exists() and len(list(out.glob("replay-*.npz"))) == 1

    assert main(["train", "--resume", str(out), "--total-steps", "200"]) == 0
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["counters"]["global_step"] == 200 and ckpt["agent"]["updates"] == (200 - 60) // 4
    assert ckpt["replay"] == "replay-200.npz" and [p.name for p in out.glob("replay-*.npz")] == ["replay-200.npz"]
    assert _steps(out / "metrics.csv") == [120, 200]


def test_paper_recipe_is_one_flag_away(capsys):
    for algo, lr in (("ppo", 3.5e-4 * 2 / 3), ("dqn", 1e-4 * 2 / 3)):
        assert main(["train", "--algo", algo, "--env", "ALE/Pong-v5", "--print-config",
                     "--recipe", str(REPO / f"profiles/recipes/{algo}_paper.yaml")]) == 0
        cfg = json.loads(capsys.readouterr().out)
        assert cfg["algo"]["width"] == 3.0 and cfg["algo"]["lr"] == pytest.approx(lr)
        assert cfg["run"]["total_steps"] == 25_000_000
    assert cfg["algo"]["prioritized"] is True and cfg["algo"]["batch_size"] == 512 and cfg["algo"]["num_envs"] == 128
    assert main(["train", "--algo", "dqn", "--env", "ALE/Pong-v5", "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["algo"]["net"] == "nature" and cfg["algo"]["buffer_size"] == 100_000  # the CPU default


def test_shared_flags_keep_one_meaning(capsys):
    assert main(["train", "--algo", "ppo", "--env", "ALE/Pong-v5", "--hidden", "64", "--gamma", "0.9",
                 "--impoola", "--clip-vloss", "false", "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)["algo"]
    assert cfg["hidden"] == [64] and cfg["gamma"] == 0.9 and cfg["impoola"] is True and cfg["clip_vloss"] is False


@pytest.mark.parametrize(("args", "message"), [
    (["--algo", "ppo", "--env", "Hopper-v5"], "ALE Atari envs"),
    (["--algo", "dqn", "--env", "ALE/Pong-v5", "--net", "resnet"], "choose impala or nature"),
    (["--algo", "ppo", "--env", "ALE/Pong-v5", "--num-minibatches", "9999"], "exceeds the rollout size"),
])
def test_config_errors_say_what_to_do(tmp_path, capsys, args, message):
    assert main(["train", *args, "--total-steps", "64", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

"""``edgerl train`` end to end as a subprocess: a tiny run, resume after SIGKILL, config errors."""

from __future__ import annotations

import csv

import torch

from edgerl.checkpoint import load_checkpoint
from tests.conftest import TINY_SAC, kill_after_checkpoint, run_cli


def _steps(path) -> list[int]:
    with open(path, newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def test_help_lists_commands():
    out = run_cli("--help").stdout
    assert "train" in out
    out = run_cli("train", "--help").stdout
    assert "--total-steps" in out and "--resume" in out and "Polyak" in out


def test_tiny_sac_run_writes_checkpoint_and_metrics(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("train", *TINY_SAC, "--total-steps", "300", "--eval-every", "150",
                   "--checkpoint-every", "150", "--out", str(out))
    assert "training finished" in proc.stdout
    assert _steps(out / "metrics.csv") == [150, 300]
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["counters"]["global_step"] == 300
    assert ckpt["env"]["observation_space"]["shape"] == [11]
    assert ckpt["env"]["action_space"]["low"] == [-1.0, -1.0, -1.0]
    assert ckpt["config"]["algo"]["hidden"] == [32, 32]
    assert ckpt["agent"]["updates"] == 300 - 100 + 1
    assert (out / ckpt["replay"]).exists() and len(list(out.glob("replay-*.npz"))) == 1
    assert torch.load(out / "ckpt.pt", weights_only=True)["algo"] == "sac"


def test_resume_after_sigkill_reaches_total_steps(tmp_path):
    out = tmp_path / "run"
    args = ["train", *TINY_SAC, "--total-steps", "1500", "--eval-every", "0", "--checkpoint-every", "100",
            "--out", str(out)]
    kill_after_checkpoint(args, out / "ckpt.pt")
    killed_at = load_checkpoint(out / "ckpt.pt")["counters"]["global_step"]
    assert 0 < killed_at < 1500
    run_cli("train", "--resume", str(out))
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["counters"]["global_step"] == 1500
    steps = _steps(out / "metrics.csv")
    assert steps[-1] == 1500 and steps == sorted(set(steps))


def test_recipe_with_unknown_key_is_an_error(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("default:\n  hiden: [4]\n")
    proc = run_cli("train", "--recipe", str(recipe), "--print-config", check=False)
    assert proc.returncode == 2 and "hiden" in proc.stderr and "Traceback" not in proc.stderr


def test_config_resolution_order(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("default:\n  batch_size: 64\n  gamma: 0.9\nHopper-v5:\n  gamma: 0.95\n")
    import json

    proc = run_cli("train", "--env", "Hopper-v5", "--recipe", str(recipe), "--gamma", "0.97", "--print-config")
    cfg = json.loads(proc.stdout)
    assert cfg["algo"]["batch_size"] == 64  # recipe default
    assert cfg["algo"]["gamma"] == 0.97  # flag beats env entry beats default
    assert cfg["algo"]["tau"] == 0.005  # dataclass default

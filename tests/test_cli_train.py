"""``edgerl train`` end to end as a subprocess: a tiny run, resume after SIGKILL, config errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
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
    assert ">= 1" in out and "[0, 1]" in out  # valid ranges declared on the config fields


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


# ------------------------------------------------------------------ hardening (issue 12, items 5-8)
def _main(capsys, *args: str) -> tuple[int, str]:
    """``edgerl ARGS`` in this process (fast for errors raised before training starts)."""
    from edgerl.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(("flags", "names"), [
    (["--hidden", "0"], ["--hidden", ">= 1"]),
    (["--hidden", ","], ["--hidden", "at least 1 value"]),
    (["--hidden=-5,32"], ["--hidden", "-5,32"]),
    (["--batch-size", "0"], ["--batch-size", ">= 1"]),
    (["--batch-size", "-3"], ["--batch-size", ">= 1"]),
    (["--buffer-size", "0"], ["--buffer-size", ">= 1"]),
    (["--threads", "0"], ["--threads", "[1, 1024]"]),
    (["--seed", "-1"], ["--seed", "[0, 4294967295]"]),
    (["--gamma", "nan"], ["--gamma", "[0, 1]"]),
    (["--total-steps", "-5"], ["--total-steps", ">= 1"]),
    (["--algo", "dqn", "--frame-stack", "0"], ["--frame-stack", ">= 1"]),
])
def test_bad_flags_are_one_line_errors_with_the_valid_range(capsys, flags, names):
    code, err = _main(capsys, "train", *flags, "--print-config")
    assert code == 2 and "\n" not in err and err.startswith("edgerl train: error:")
    assert all(n in err for n in names), err


def test_existing_run_folder_is_refused_without_overwrite(tmp_path, capsys):
    from edgerl.commands.train import check_out
    from edgerl.config import RunConfig

    run = tmp_path / "run"
    run.mkdir()
    for name in ("ckpt.pt", "metrics.csv", "replay-100.npz", "notes.txt"):
        (run / name).write_text(name)
    code, err = _main(capsys, "train", *TINY_SAC, "--total-steps", "10", "--out", str(run))
    assert code == 2 and "--resume" in err and "--overwrite" in err and "\n" not in err
    assert sorted(p.read_text() for p in run.iterdir()) == ["ckpt.pt", "metrics.csv", "notes.txt", "replay-100.npz"]
    check_out(RunConfig(out=str(run)), overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    code, err = _main(capsys, "train", *TINY_SAC, "--out", str(tmp_path / "file"))
    assert code == 2 and "is a file, not a folder" in err
    assert (tmp_path / "file").read_text() == "x"
    code, err = _main(capsys, "train", "--resume", str(run), "--overwrite")
    assert code == 2 and "pass one of them" in err


def _run_folder(path: Path, **edits) -> Path:
    """A SAC run folder on Hopper at step 100 (written directly, no training)."""
    from edgerl.algos.run import save_train_checkpoint
    from edgerl.algos.sac import SACAgent, SACConfig
    from edgerl.config import PruneConfig, RunConfig
    from edgerl.envs import make_env, space_env_info

    env = make_env("Hopper-v5")
    info = space_env_info(env)
    env.close()
    cfg = SACConfig(hidden=[32, 32], batch_size=32, learning_starts=100)
    run = RunConfig(env="Hopper-v5", total_steps=100, out=str(path), eval_episodes=1, progress=False)
    path.mkdir(parents=True, exist_ok=True)
    save_train_checkpoint(path, algo="sac", env=info, run=run, algo_cfg=cfg, prune=PruneConfig(),
                          agent=SACAgent(cfg, 11, 3), hooks=[], counters={"global_step": 100, "episodes": 2, "updates": 1},
                          np_rng=np.random.default_rng(0), last_eval=(0.0, 0.0), replay=None)
    if edits:
        from edgerl.checkpoint import save_checkpoint

        data = load_checkpoint(path / "ckpt.pt")
        for key, value in edits.items():
            *head, last = key.split("__")
            d = data
            for k in head:
                d = d[k]
            if value is None:
                del d[last]
            else:
                d[last] = value
        save_checkpoint(path / "ckpt.pt", data)
    return path


@pytest.mark.parametrize(("edits", "match"), [
    ({"rng": None}, "lacks its RNG states"),
    ({"counters": None}, "lacks valid counters"),
    ({"counters__global_step": "100"}, "lacks valid counters"),
    ({"config__algo": None}, "lacks its resolved config"),
    ({"agent__optim": None}, "cannot restore its agent state"),
    ({"agent__nets__actor": None}, "actor"),
    ({"algo": "ppo"}, "relabelled"),
    ({"algo": "dqn", "config__run__algo": "dqn"}, "DQNConfig"),
    ({"replay": "../../outside.npz"}, "replay-<step>.npz inside the run folder"),
    ({"kind": "policy"}, "not a training one"),
])
def test_resume_of_a_damaged_checkpoint_is_one_line(tmp_path, capsys, edits, match):
    run = _run_folder(tmp_path / "run", **edits)
    code, err = _main(capsys, "train", "--resume", str(run), "--total-steps", "150")
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert match in err, err


def test_resume_flags_are_validated_and_may_not_disagree(tmp_path, capsys):
    run = _run_folder(tmp_path / "run")
    code, err = _main(capsys, "train", "--resume", str(run), "--total-steps", "-5")
    assert code == 2 and "--total-steps must be >= 1" in err
    code, err = _main(capsys, "train", "--resume", str(run), "--total-steps", "50")
    assert code == 2 and "below the 100 steps" in err
    for flags in (["--hidden", "64,64"], ["--algo", "ppo"], ["--env", "Walker2d-v5"], ["--out", str(tmp_path / "x")]):
        code, err = _main(capsys, "train", "--resume", str(run), *flags)
        assert code == 2 and "only --total-steps, --progress and --device may change" in err and flags[0] in err, err
    code, _ = _main(capsys, "train", "--resume", str(run), "--hidden", "32,32", "--algo", "sac", "--print-config")
    assert code == 0


def test_resume_removes_stale_temp_files_and_interrupted_replay_writes_leave_none(tmp_path, monkeypatch, capsys):
    from edgerl.algos.replay import ReplayBuffer

    run = _run_folder(tmp_path / "run")
    stale = [run / ".replay-100.npz.k3j2.tmp", run / ".ckpt.pt.x9.tmp", run / "metrics.csv.tmp"]
    for p in stale:
        p.write_bytes(b"partial")
    (run / "notes.tmp").write_text("mine")
    assert _main(capsys, "train", "--resume", str(run), "--total-steps", "110")[0] == 0
    assert not any(p.exists() for p in stale) and (run / "notes.tmp").exists()
    assert load_checkpoint(run / "ckpt.pt")["counters"]["global_step"] == 110

    buf = ReplayBuffer(8, (3,), (1,))
    buf.add(np.zeros(3), np.zeros(1), 0.0, np.zeros(3), False)

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        buf.save(tmp_path / "replay-1.npz")
    assert list(tmp_path.glob("*replay*")) == []

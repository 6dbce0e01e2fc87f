"""End to end: ``edgerl import`` -> ``deploy`` -> ``run`` on a CleanRL TD3 actor for Pendulum-v1, and
``compact`` on imported policies (dense imports compact to themselves)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from edgerl.checkpoint import load_checkpoint
from edgerl.compact import compact_checkpoint
from edgerl.interop import import_policy
from tests.conftest import run_cli


class Actor(nn.Module):  # cleanrl/td3_continuous_action.py for Pendulum-v1 (3 obs, 1 action in [-2, 2])
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc_mu = nn.Linear(3, 16), nn.Linear(16, 16), nn.Linear(16, 1)
        self.register_buffer("action_scale", torch.tensor([2.0]))
        self.register_buffer("action_bias", torch.tensor([0.0]))


def _model(tmp_path) -> str:
    torch.manual_seed(0)
    path = tmp_path / "td3.cleanrl_model"
    torch.save((Actor().state_dict(), {}, {}), path)
    return str(path)


@pytest.mark.slow  # ~30 s on the shared machine: three CLI processes, deploy's ONNX export
def test_cli_import_deploy_run(tmp_path):
    out = run_cli("import", _model(tmp_path), "--from", "cleanrl", "--env", "Pendulum-v1", "-o", str(tmp_path / "p.pt"))
    assert "td3/ddpg" in out.stdout and "tanh" in out.stdout
    run_cli("deploy", str(tmp_path / "p.pt"), "--target", "x86-cpu", "-o", str(tmp_path / "bundle"),
            "--recorded-steps", "16")
    contract = json.loads((tmp_path / "bundle" / "contract.json").read_text())
    assert contract["action"]["low"] == [-2.0] and contract["action"]["high"] == [2.0]
    assert contract["baked_in"] == ["deterministic_head", "tanh_squash", "action_rescale"]  # as edgerl SAC
    res = run_cli("run", str(tmp_path / "bundle"), "--episodes", "1", "--max-steps", "20", "--checkpoint",
                  str(tmp_path / "p.pt"), "--json", str(tmp_path / "run.json"))
    assert "Pendulum-v1" in res.stdout
    report = json.loads((tmp_path / "run.json").read_text())
    runtime, torch_ret = np.asarray(report["runtime_returns"]), np.asarray(report["torch_returns"])
    assert runtime.shape == (1,) and np.abs(runtime - torch_ret).max() <= 1e-3  # same episode, both paths


def test_cli_import_bad_input_is_one_line(tmp_path, capsys):
    from edgerl.cli import main

    torch.save({"weird.weight": torch.zeros(2, 2)}, tmp_path / "m.pt")
    assert main(["import", str(tmp_path / "m.pt"), "--from", "cleanrl", "-o", str(tmp_path / "p.pt")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgerl import: error:") and "weird.weight" in lines[0]
    assert not (tmp_path / "p.pt").exists()


def _rsl_rl_model(tmp_path) -> str:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 16), nn.ELU(), nn.Linear(16, 1))
    with torch.no_grad():  # a dead unit (zero row) whose constant ELU(bias) compaction must fold
        net[0].weight[5].zero_()
    path = tmp_path / "model.pt"
    torch.save({"model_state_dict": {f"actor.{k}": v for k, v in net.state_dict().items()}}, path)
    return str(path)


@pytest.mark.parametrize("source", ["cleanrl", "rsl_rl"])
def test_compact_imported_policy(tmp_path, source):
    """Dense imports compact to themselves (CleanRL TD3 as edgerl SAC); a dead unit of an ELU
    network is folded with the ELU constant, not ReLU's."""
    from edgerl.checkpoint import save_checkpoint

    src = _model(tmp_path) if source == "cleanrl" else _rsl_rl_model(tmp_path)
    payload, _ = import_policy(src, source)
    assert payload["algo"] == ("sac" if source == "cleanrl" else "continuous")
    save_checkpoint(tmp_path / "p.pt", payload)
    compacted, report = compact_checkpoint(load_checkpoint(tmp_path / "p.pt"), recorded_steps=0)
    assert report.max_abs_diff["random"] <= 1e-5  # compaction checks it too; fails on NaN
    removed = report.params_before - report.params_after
    assert removed == (0 if source == "cleanrl" else 3 + 1 + 1)  # one hidden unit: 3 in, 1 bias, 1 out
    (name,) = payload["agent"]["nets"]
    widths = compacted["agent"]["nets"][name]["spec"]["kwargs"]["hidden"]
    assert widths == ([16, 16] if source == "cleanrl" else [15])

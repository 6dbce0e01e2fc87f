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


def _rsl_rl_recurrent(tmp_path, kind: str = "lstm") -> str:
    """A tiny rsl_rl 4.x+ recurrent actor for Pendulum-v1 (3 observations, 1 action), saved as its runner does."""
    pytest.importorskip("rsl_rl")
    from rsl_rl.algorithms import PPO
    from rsl_rl.models import RNNModel
    from tensordict import TensorDict

    obs = TensorDict({"policy": torch.zeros(4, 3)}, batch_size=[4])
    groups = {"actor": ["policy"], "critic": ["policy"]}
    torch.manual_seed(0)
    actor = RNNModel(obs, groups, "actor", 1, hidden_dims=[8], obs_normalization=True, rnn_type=kind,
                     rnn_hidden_dim=8, rnn_num_layers=2,
                     distribution_cfg={"class_name": "rsl_rl.modules.distribution:GaussianDistribution"})
    critic = RNNModel(obs, groups, "critic", 1, hidden_dims=[8], rnn_type=kind, rnn_hidden_dim=8)
    path = tmp_path / "model_0.pt"
    torch.save({**PPO(actor, critic, storage=None).save(), "iter": 0, "infos": None}, path)
    return str(path)


def test_cli_recurrent_import_compact_deploy_run(tmp_path, capsys):
    """A recurrent rsl_rl actor through every command: import, compact (to itself), deploy (contract
    ``recurrent`` section, reference = one fed-back episode), run (runtime == torch, state reset per
    episode); the feed-forward-only paths refuse in one line naming what to use instead."""
    from edgerl.cli import main

    src = _rsl_rl_recurrent(tmp_path)
    assert main(["import", src, "--from", "rsl_rl", "--env", "Pendulum-v1", "-o", str(tmp_path / "p.pt")]) == 0
    assert "LSTM 2x8" in capsys.readouterr().out
    compacted, report = compact_checkpoint(load_checkpoint(tmp_path / "p.pt"), recorded_steps=16)
    assert report.params_before == report.params_after and max(report.max_abs_diff.values()) <= 1e-5
    assert compacted["agent"]["nets"]["policy"]["spec"]["type"] == "rnn_mlp"
    assert main(["deploy", str(tmp_path / "p.pt"), "--target", "x86-cpu", "-o", str(tmp_path / "bundle"),
                 "--recorded-steps", "16"]) == 0
    contract = json.loads((tmp_path / "bundle" / "contract.json").read_text())
    assert contract["recurrent"] == {"kind": "lstm", "inputs": ["h_in", "c_in"], "outputs": ["h_out", "c_out"],
                                     "shape": [2, 1, 8], "batch_axis": 1, "dtype": "float32",
                                     "reset": "zeros_at_episode_start"}
    assert contract["baked_in"] == ["observation_normalizer", "lstm_memory", "deterministic_head"]
    with np.load(tmp_path / "bundle" / "reference.npz") as ref:  # recorded episode, then a random one
        assert ref["start"].dtype == bool and ref["start"][0] and ref["start"][1:].any()
    capsys.readouterr()
    assert main(["run", str(tmp_path / "bundle"), "--episodes", "2", "--max-steps", "30", "--checkpoint",
                 str(tmp_path / "p.pt"), "--json", str(tmp_path / "run.json")]) == 0
    report_run = json.loads((tmp_path / "run.json").read_text())
    runtime, torch_ret = np.asarray(report_run["runtime_returns"]), np.asarray(report_run["torch_returns"])
    assert runtime.shape == (2,) and np.abs(runtime - torch_ret).max() <= 1e-3  # same episodes, both paths
    capsys.readouterr()
    assert main(["export", str(tmp_path / "p.pt"), "--precision", "int8", "-o", str(tmp_path / "q.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("--precision int8 covers feed-forward policies; this one carries a lstm state: export "
                              "it at --precision fp16 or fp32") in err[0], err
    # A recurrent teacher distils into a smaller student of its memory kind (tests/distill cover the fit).
    assert main(["distill", str(tmp_path / "p.pt"), "-o", str(tmp_path / "s.pt"), "--rnn-hidden", "4", "--widths", "8",
                 "--rounds", "0", "--round-states", "200", "--steps-per-round", "20", "--eval-episodes", "0",
                 "--progress", "false"]) == 0
    student = load_checkpoint(tmp_path / "s.pt")["agent"]["nets"]["policy"]["spec"]
    assert student["type"] == "rnn_mlp" and student["kwargs"]["rnn_type"] == "lstm"
    assert student["kwargs"]["rnn_hidden"] == 4 and student["kwargs"]["hidden"] == [8]


@pytest.mark.parametrize("kind", ["lstm", "gru", "feed-forward"])
def test_imported_policy_at_fp16_is_judged_in_action_units(tmp_path, kind):
    """fp16 export of imported policies: the error is |a - a_fp32| per action against the float32
    policy (a continuous chain, not discrete agreement); a recurrent one runs as a stream with its
    state float32 at the graph's edges and reset at episode starts, and its fp16 bundle runs with
    runtime == torch returns."""
    from edgerl.cli import main
    from edgerl.commands.run import run_bundle
    from edgerl.export import export_policy

    src = _rsl_rl_model(tmp_path) if kind == "feed-forward" else _rsl_rl_recurrent(tmp_path, kind)
    assert main(["import", src, "--from", "rsl_rl", "--env", "Pendulum-v1", "-o", str(tmp_path / "p.pt")]) == 0
    rep = export_policy(tmp_path / "p.pt", precision="fp16", recorded_steps=64)
    assert rep.precision == "fp16" and rep.precision_report.graph_precision == "fp16"
    for stats in rep.precision_report.stats.values():
        assert stats.agreement is None and 0 < stats.max <= 1e-2 and stats.n > 0  # fp16 is not exact, and close
    if kind == "feed-forward":
        return
    deploy_args = ["deploy", str(tmp_path / "p.pt"), "--target", "x86-cpu", "--precision", "fp16",
                   "-o", str(tmp_path / "bundle"), "--recorded-steps", "16"]
    assert main(deploy_args) == 0
    res = run_bundle(tmp_path / "bundle", None, 2, 0, None, str(tmp_path / "p.pt"), True, 30)
    runtime, torch_ret = np.asarray(res["runtime_returns"]), np.asarray(res["torch_returns"])
    assert runtime.shape == (2,) and np.abs(runtime - torch_ret).max() <= 0.05  # fp16 graph vs float32 torch


def test_import_answers_to_its_module_name_too(tmp_path, capsys):
    """``edgerl import_`` (the module's name, as README shows it) is the same command as ``edgerl import``."""
    from edgerl.cli import main

    torch.save({"weird.weight": torch.zeros(2, 2)}, tmp_path / "m.pt")
    assert main(["import_", str(tmp_path / "m.pt"), "--from", "cleanrl", "-o", str(tmp_path / "p.pt")]) == 2
    assert capsys.readouterr().err.startswith("edgerl import: error:")  # parsed and run as `import`
    assert main(["import_", _model(tmp_path), "--from", "cleanrl", "--env", "Pendulum-v1", "-o",
                 str(tmp_path / "p.pt")]) == 0 and (tmp_path / "p.pt").is_file()

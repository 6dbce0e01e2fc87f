"""``--precision int8`` end to end: an image policy's QDQ export, a deployed int8 bundle run by the
runtime here, the CLI flags, and the profile's precision fields."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest

from edgerl.checkpoint import load_checkpoint
from edgerl.export import export_policy, policy_from_checkpoint
from edgerl.export.observations import recorded_observations
from edgerl.export.quantize import QDQ_OPS
from edgerl.runtime.errors import ProfileError
from edgerl.runtime.profile import load_profile, validate_profile
from tests.conftest import run_cli

from .conftest import write_sac_checkpoint


def test_int8_image_policy_keeps_pixel_scaling_float_and_argmax(tmp_path):
    pytest.importorskip("ale_py", reason="the image agents need the Atari extra: pip install 'edgerl[atari]'")
    from .test_image_agents import _image_ckpt

    ckpt_path, _ = _image_ckpt(tmp_path / "ckpt.pt", "dqn")
    ckpt = load_checkpoint(ckpt_path)
    frames = recorded_observations(policy_from_checkpoint(ckpt), ckpt, 48, seed=1)
    rep = export_policy(ckpt_path, precision="int8", calibration_obs=frames, recorded_steps=0, exporter="legacy")
    model = onnx.load(rep.onnx_path)
    onnx.checker.check_model(model)
    first = [n for n in model.graph.node if "obs" in n.input]
    last = next(n for n in model.graph.node if "action" in n.output)
    assert [n.op_type for n in first] == ["Cast"]  # uint8 frames -> float, then scaled in float
    assert last.op_type == "ArgMax" and sum(n.op_type == "QuantizeLinear" for n in model.graph.node) >= 3
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    held = rep.precision_report.stats["held_out"]
    assert held.agreement is not None and held.agreement >= 0.99 and held.n > 0
    assert all(n.op_type not in QDQ_OPS for n in first)


def test_deploy_int8_bundle_runs_through_the_runtime(tmp_path, hopper_env):
    from edgerl.commands.deploy import deploy
    from edgerl.runtime import Policy

    ckpt = write_sac_checkpoint(tmp_path / "ckpt.pt", hopper_env)
    summary = deploy(ckpt, "x86-cpu", tmp_path / "bundle", recorded_steps=48, precision="int8")
    assert summary["precision"] == "int8" and summary["precision_report"]["graph_precision"] == "int8"
    policy = Policy.load(tmp_path / "bundle")
    try:
        assert policy.backend.precision == "int8"  # read from the graph itself, not from the contract
        assert policy.contract.precision == "int8" and policy.profile.precision == "int8"
        a = policy.act(np.zeros(11))
        assert a.shape == (3,) and np.all(np.isfinite(a))
    finally:
        policy.close()


def test_cli_rejects_an_unknown_precision(tmp_path):
    proc = run_cli("export", str(tmp_path / "none.pt"), "--precision", "int4", check=False)
    assert proc.returncode == 2 and "invalid choice: 'int4'" in proc.stderr


def test_profile_precision_fields():
    x86 = load_profile("x86-cpu")
    assert x86.round_to == 8
    base = {k: v for k, v in x86.to_dict().items()}
    p = validate_profile({**base, "precision": "int8", "parity_atol_int8": 0.2})
    assert p.effective_atol == 0.2 and p.parity_for("int8")["max_abs"] == 0.2
    assert p.effective_discrete_mismatch == pytest.approx(0.01)
    assert dataclasses.replace(p, precision="fp32").effective_atol == x86.parity_atol
    with pytest.raises(ProfileError, match="'precision'.*one of \\['fp32', 'fp16', 'int8'\\]"):
        validate_profile({**base, "precision": "int4"})
    with pytest.raises(ProfileError, match="round_to"):
        validate_profile({**base, "round_to": 0})
    for name in ("desktop-gpu", "jetson-orin-nano", "jetson-agx-orin", "jetson-xavier-nx"):
        assert load_profile(name).round_to in (16, 32)


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_conv_recipes_round_pruned_widths_by_default(algo):
    from edgerl.cli import build_parser
    from edgerl.commands.train import resolve

    args = build_parser().parse_args(["train", "--algo", algo, "--env", "ALE/Breakout-v5", "--prune", "gradual"])
    _, _, prune = resolve(args)
    assert prune.round_to == 8


def test_runtime_reports_a_graph_that_is_not_the_contracts_precision(tmp_path, hopper_env, caplog):
    import json
    import logging

    from edgerl.export.observations import reference_observations
    from edgerl.runtime import Policy
    from edgerl.runtime.bundle import write_bundle

    ckpt = write_sac_checkpoint(tmp_path / "ckpt.pt", hopper_env)
    rep = export_policy(ckpt, tmp_path / "policy.onnx", recorded_steps=0, exporter="legacy")
    contract = json.loads((tmp_path / "contract.json").read_text())
    contract["precision"] = "int8"  # claims int8, ships the float32 graph
    ref = reference_observations(load_checkpoint(ckpt), 8, recorded=False)
    write_bundle(tmp_path / "b", rep.onnx_path, contract, ref["obs"], ref["action"], load_profile("x86-cpu"))
    with caplog.at_level(logging.WARNING, logger="edgerl.runtime.policy"):
        policy = Policy.load(tmp_path / "b")
    policy.close()
    assert policy.backend.precision == "fp32"
    assert "contract.json says int8 but backend ort-cpu computes in fp32" in caplog.text

"""SAC export round trip: checkpoint -> ONNX (+ contract) -> onnx.checker -> ORT parity."""

from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import edgerl
from edgerl.checkpoint import load_checkpoint
from edgerl.export import (
    ExportCheckError,
    export_policy,
    onnx_io,
    policy_from_checkpoint,
    reference_observations,
)
from edgerl.export.checks import FP16_ATOL
from edgerl.runtime.contract import read_contract
from edgerl.runtime.fileio import sha256_file
from tests.export.conftest import HIGH, LOW, write_sac_checkpoint


@pytest.fixture(scope="module")
def exported(tmp_path_factory, hopper_env):
    """One exported SAC checkpoint (with normaliser statistics), shared by the tests below."""
    root = tmp_path_factory.mktemp("sac")
    ckpt = write_sac_checkpoint(root / "ckpt.pt", hopper_env)
    report = export_policy(ckpt, root / "out" / "policy.onnx", recorded_steps=200)
    return ckpt, report


def _session(path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _torch(ckpt, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return policy_from_checkpoint(load_checkpoint(ckpt))(torch.as_tensor(obs, dtype=torch.float32)).numpy()


def test_export_writes_one_checked_file(exported):
    ckpt, report = exported
    out = ckpt.parent / "out"
    assert sorted(p.name for p in out.iterdir()) == ["contract.json", "policy.onnx"]  # no .onnx.data
    model = onnx.load(report.onnx_path)
    onnx.checker.check_model(model, full_check=True)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert report.size_bytes == (out / "policy.onnx").stat().st_size
    assert report.checks == ["onnx.checker", "single-file", "signature", "parity-random", "parity-recorded",
                             "action-bounds", "contract"]
    assert report.exporter == "dynamo" and report.precision == "fp32"


def test_opset_is_read_back(exported):
    _, report = exported
    model = onnx.load(report.onnx_path)
    declared = {o.domain: o.version for o in model.opset_import}
    assert declared.get("", declared.get("ai.onnx")) == report.opset >= 18
    assert read_contract(report.contract_path).raw["versions"]["opset"] == report.opset


def test_io_names_dtypes_and_dynamic_batch(exported):
    ckpt, report = exported
    sess = _session(report.onnx_path)
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.type, out.name, out.type) == ("obs", "tensor(float)", "action", "tensor(float)")
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [11]
    rng = np.random.default_rng(0)
    for batch in (1, 5, 64):
        obs = rng.normal(2.0, 3.0, size=(batch, 11)).astype(np.float32)
        got = sess.run(["action"], {"obs": obs})[0]
        assert got.shape == (batch, 3) and got.dtype == np.float32
        np.testing.assert_allclose(got, _torch(ckpt, obs), rtol=0, atol=1e-5)


def test_parity_report_numbers(exported):
    _, report = exported
    assert report.parity.n_obs == {"random": 256, "recorded": 200}
    for source in ("random", "recorded"):
        assert set(report.parity.max_abs_diff[source]) == {1, 7, 64}
    assert report.parity.worst <= 1e-5 and report.parity.atol == 1e-5


def test_actions_stay_within_env_bounds(exported):
    _, report = exported
    obs = np.random.default_rng(1).normal(0.0, 1e3, size=(256, 11)).astype(np.float32)  # saturates tanh
    act = _session(report.onnx_path).run(["action"], {"obs": obs})[0]
    assert np.all(act >= np.array(LOW, np.float32)) and np.all(act <= np.array(HIGH, np.float32))
    assert np.abs(act[:, 0]).max() > 1.0  # rescaled beyond tanh's [-1, 1] on the wide dimension


def test_contract_contents(exported):
    ckpt, report = exported
    contract = read_contract(report.contract_path)  # the runtime's own validator
    raw = contract.raw
    assert raw["observation"] == {"name": "obs", "shape": [11], "dtype": "float64", "low": None, "high": None,
                                  "names": None}
    assert raw["action"] == {"name": "action", "shape": [3], "dtype": "float32", "discrete": False, "n": None,
                             "low": LOW, "high": HIGH}
    assert raw["baked_in"] == ["observation_normalizer", "deterministic_head", "tanh_squash", "action_rescale"]
    assert raw["source"]["sha256"] == sha256_file(ckpt) == report.sha256
    assert raw["source"] | {"checkpoint": None} == {"checkpoint": None, "sha256": report.sha256, "algo": "sac",
                                                    "env_id": "Hopper-v5", "kind": "train", "steps": 4321}
    assert set(raw["versions"]) == {"edgerl", "torch", "onnx", "onnxruntime", "opset"}
    assert raw["precision"] == "fp32"
    assert contract.act_shape == (3,) and not contract.discrete


def test_metadata_props(exported):
    ckpt, report = exported
    meta = onnx_io.get_metadata(onnx.load(report.onnx_path))
    assert meta["edgerl.version"] == edgerl.__version__
    assert meta["edgerl.algo"] == "sac" and meta["edgerl.env_id"] == "Hopper-v5"
    assert meta["edgerl.source_sha256"] == sha256_file(ckpt)
    assert meta["edgerl.steps"] == "4321"
    assert json.loads(meta["edgerl.obs_shape"]) == [11] and json.loads(meta["edgerl.action_shape"]) == [3]
    assert meta["edgerl.precision"] == "fp32"


def test_report_json_and_summary(exported):
    _, report = exported
    d = json.loads(json.dumps(report.to_dict()))
    assert d["parity"]["max_abs_diff"]["recorded"].keys() == {"1", "7", "64"}
    assert d["opset"] == report.opset and d["steps"] == 4321
    text = report.summary()
    assert "policy.onnx" in text and "parity" in text and "onnx.checker" in text


def test_normaliser_is_baked_in(exported, tmp_path, hopper_env):
    with_stats, ra = exported
    zero_stats = write_sac_checkpoint(tmp_path / "ckpt.pt", hopper_env, stats=False)  # same weights
    rb = export_policy(zero_stats, recorded_steps=0)
    obs = np.random.default_rng(2).normal(2.0, 2.0, size=(64, 11)).astype(np.float32)
    a = _session(ra.onnx_path).run(["action"], {"obs": obs})[0]
    b = _session(rb.onnx_path).run(["action"], {"obs": obs})[0]
    assert np.abs(a - b).max() > 1e-2  # same weights, different statistics -> different actions
    np.testing.assert_allclose(a, _torch(with_stats, obs), atol=1e-5, rtol=0)
    np.testing.assert_allclose(b, _torch(zero_stats, obs), atol=1e-5, rtol=0)
    assert ra.baked_in[0] == "observation_normalizer"


def test_fp16_variant(tmp_path, hopper_env):
    ckpt = write_sac_checkpoint(tmp_path / "ckpt.pt", hopper_env)
    report = export_policy(ckpt, fp16=True, recorded_steps=50)
    assert report.onnx_path.endswith("policy_fp16.onnx") and report.precision == "fp16"
    model = onnx.load(report.onnx_path)
    gemm_weights = {n.input[1] for n in model.graph.node if n.op_type == "Gemm"}
    assert gemm_weights and all(t.data_type == onnx.TensorProto.FLOAT16
                                for t in model.graph.initializer if t.name in gemm_weights)
    sess = _session(report.onnx_path)
    assert sess.get_inputs()[0].type == sess.get_outputs()[0].type == "tensor(float)"
    assert report.parity.atol == FP16_ATOL and 0 < report.parity.worst < FP16_ATOL
    assert read_contract(report.contract_path).raw["precision"] == "fp16"


def test_diverging_export_fails_loudly_and_writes_nothing(tmp_path, hopper_env, monkeypatch):
    ckpt = write_sac_checkpoint(tmp_path / "ckpt.pt", hopper_env)
    real = onnx_io.export_onnx

    def diverging(policy, example, opset=None, exporter="auto"):
        broken = copy.deepcopy(policy)
        with torch.no_grad():
            broken.net.mean.bias += 0.05
        return real(broken, example, opset, exporter)

    monkeypatch.setattr("edgerl.export.api.export_onnx", diverging)
    with pytest.raises(ExportCheckError, match=r"disagree on random observations at batch size 1"):
        export_policy(ckpt, recorded_steps=0, exporter="legacy")  # the fast converter: any will do
    assert not (tmp_path / "policy.onnx").exists() and not (tmp_path / "contract.json").exists()


def test_legacy_fallback_when_dynamo_fails(tmp_path, hopper_env, monkeypatch):
    ckpt = write_sac_checkpoint(tmp_path / "ckpt.pt", hopper_env)

    def broken_dynamo(*args, **kwargs):
        raise RuntimeError("simulated torch.export failure")

    monkeypatch.setattr(onnx_io, "_dynamo", broken_dynamo)
    report = export_policy(ckpt, recorded_steps=0)
    assert report.exporter == "legacy" and report.parity.worst <= 1e-5
    assert any("simulated torch.export failure" in n for n in report.notes)
    assert onnx_io.get_metadata(onnx.load(report.onnx_path))["edgerl.exporter"] == "legacy"


def test_reference_observations(tmp_path, hopper_env):
    ckpt = write_sac_checkpoint(tmp_path / "ckpt.pt", hopper_env)
    ref = reference_observations(ckpt, 40, seed=3)
    assert ref["obs"].shape == (40, 11) and ref["obs"].dtype == np.float64
    assert ref["action"].shape == (40, 3) and ref["action"].dtype == np.float32
    np.testing.assert_array_equal(ref["action"], _torch(ckpt, ref["obs"]))
    again = reference_observations(load_checkpoint(ckpt), 40, seed=3)
    np.testing.assert_array_equal(again["obs"], ref["obs"])

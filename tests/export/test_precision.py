"""INT8 (QDQ) and fp16 exports: graph content, float ends, checks against float32, thresholds."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgerl.checkpoint import load_checkpoint
from edgerl.errors import ConfigError
from edgerl.export import ExportCheckError, export_policy, policy_from_checkpoint
from edgerl.export.observations import recorded_observations
from edgerl.export.precision_checks import ErrorStats, PrecisionThresholds, error_stats, failures
from edgerl.export.quantize import (
    QDQ_OPS,
    float_end_nodes,
    load_observation_file,
    split_observations,
)
from edgerl.runtime.graph import graph_content, graph_precision

from .conftest import write_sac_checkpoint


@pytest.fixture(scope="module")
def sac_ckpt(tmp_path_factory, hopper_env):
    return write_sac_checkpoint(tmp_path_factory.mktemp("int8") / "ckpt.pt", hopper_env)


@pytest.fixture(scope="module")
def recorded(sac_ckpt):
    ckpt = load_checkpoint(sac_ckpt)
    return recorded_observations(policy_from_checkpoint(ckpt), ckpt, 160, seed=3)


@pytest.fixture(scope="module")
def int8_export(sac_ckpt, recorded):
    return export_policy(sac_ckpt, precision="int8", calibration_obs=recorded, recorded_steps=0, exporter="legacy")


def _io_nodes(model):
    consumers = [n for n in model.graph.node if "obs" in n.input]
    producer = next(n for n in model.graph.node if "action" in n.output)
    return consumers, producer


def test_int8_sac_graph_is_qdq_with_float_ends(int8_export, sac_ckpt, recorded):
    model = onnx.load(int8_export.onnx_path)
    onnx.checker.check_model(model, full_check=True)
    ops = Counter(n.op_type for n in model.graph.node)
    consumers, producer = _io_nodes(model)
    produced_by = {o: n for n in model.graph.node for o in n.output}

    def int8_fed(node) -> bool:  # input and weights come through DequantizeLinear
        return all(x in produced_by and produced_by[x].op_type == "DequantizeLinear" for x in node.input[:2])

    # Vector observations: the first layer (mixed input ranges) and the mean head stay float, the
    # hidden layer is int8 (QuantizeLinear on its input, per-channel int8 weights).
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    assert [int8_fed(g) for g in gemms] == [False, True, False]
    assert ops["QuantizeLinear"] >= 1 and ops["DequantizeLinear"] >= 2
    # The normaliser takes the raw float observation; the rescale emits the float action.
    assert consumers and all(n.op_type not in QDQ_OPS for n in consumers)
    assert producer.op_type not in QDQ_OPS
    assert all(produced_by[i].op_type not in QDQ_OPS for i in producer.input if i in produced_by)
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert json.loads(open(int8_export.contract_path).read())["precision"] == "int8"
    assert {p.key: p.value for p in model.metadata_props}["edgerl.precision"] == "int8"
    # The graph reader the runtime uses (no onnx package) sees the same ops as onnx itself.
    assert graph_content(int8_export.onnx_path)["ops"] == dict(sorted(ops.items()))
    assert graph_precision(graph_content(int8_export.onnx_path)) == "int8"


def test_int8_error_stats_match_an_independent_comparison(int8_export, sac_ckpt, recorded):
    rep = int8_export.precision_report
    assert rep.graph_precision == "int8" and set(rep.stats) == {"calibration", "held_out"}
    calib, held = split_observations(recorded.astype(np.float32), seed=0)
    policy = policy_from_checkpoint(load_checkpoint(sac_ckpt))
    sess = ort.InferenceSession(int8_export.onnx_path, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"obs": held})[0]
    with torch.no_grad():
        want = policy(torch.as_tensor(held)).numpy()
    scale = np.maximum(1.0, policy.half_range.numpy())
    diff = np.abs(got.astype(np.float64) - want) / scale
    s = rep.stats["held_out"]
    assert s.n == len(held)
    assert s.max == pytest.approx(diff.max(), rel=1e-6, abs=1e-9)
    assert s.p99 == pytest.approx(np.percentile(diff, 99), rel=1e-6, abs=1e-9)
    assert 0 < s.median <= s.p99 <= s.max <= rep.thresholds.max_abs  # quantized: not exact, within the bar
    assert np.all((got >= policy.low.numpy() - 1e-6) & (got <= (policy.low + 2 * policy.half_range).numpy() + 1e-6))


def test_too_tight_parity_fails_loudly_and_writes_nothing(sac_ckpt, recorded, tmp_path):
    out = tmp_path / "p.onnx"
    tight = PrecisionThresholds(max_abs=1e-7, p99_abs=1e-7, agreement=1.0)
    with pytest.raises(ExportCheckError, match=r"int8 graph is too far .*held_out: max"):
        export_policy(sac_ckpt, out, precision="int8", calibration_obs=recorded, recorded_steps=0,
                      exporter="legacy", thresholds=tight)
    assert not out.exists() and not (tmp_path / "contract.json").exists()


def test_fp16_reports_error_stats_and_graph_precision(sac_ckpt, tmp_path):
    rep = export_policy(sac_ckpt, tmp_path / "p16.onnx", fp16=True, recorded_steps=0, exporter="legacy")
    assert rep.precision == "fp16" and rep.precision_report.graph_precision == "fp16"
    assert 0 < rep.precision_report.stats["random"].max <= 1e-2
    with pytest.raises(ConfigError, match="contradicts"):
        export_policy(sac_ckpt, tmp_path / "x.onnx", fp16=True, precision="int8")
    with pytest.raises(ConfigError, match="not one of"):
        export_policy(sac_ckpt, tmp_path / "x.onnx", precision="int4")


def test_checks_are_nan_safe():
    bars = PrecisionThresholds(max_abs=0.15, p99_abs=0.05, agreement=0.99)
    nan = float("nan")
    assert failures({"held_out": ErrorStats(n=3, max=nan, median=nan, p99=nan)}, bars)
    assert failures({"held_out": ErrorStats(n=3, agreement=nan)}, bars)
    stats = error_stats(np.zeros((4, 2)), np.array([[0, 0], [0, np.nan], [0, 0], [0, 0]]), np.ones(2))
    assert math.isinf(stats.max) and failures({"s": stats}, bars)
    ok = error_stats(np.zeros((4, 2)), np.full((4, 2), 0.01), np.ones(2))
    assert not failures({"s": ok}, bars)


def test_float_ends_and_observation_files(tmp_path):
    h = onnx.helper
    nodes = [h.make_node("Sub", ["obs", "m"], ["x"], name="norm"),
             h.make_node("Gemm", ["x", "w1", "b1"], ["y"], name="fc1"),
             h.make_node("Relu", ["y"], ["r"], name="relu"),
             h.make_node("Gemm", ["r", "w2", "b2"], ["z"], name="fc2"),
             h.make_node("Tanh", ["z"], ["t"], name="squash"),
             h.make_node("Mul", ["t", "s"], ["action"], name="rescale")]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("obs", onnx.TensorProto.FLOAT, ["b", 2])],
                         [h.make_tensor_value_info("action", onnx.TensorProto.FLOAT, ["b", 2])])
    assert float_end_nodes(h.make_model(graph)) == ["norm", "squash", "rescale"]
    np.savez(tmp_path / "o.npz", obs=np.ones((5, 11)))
    assert load_observation_file(tmp_path / "o.npz", [11]).shape == (5, 11)
    with pytest.raises(ConfigError, match="expected"):
        load_observation_file(tmp_path / "o.npz", [3])
    np.savez(tmp_path / "bad.npz", frames=np.ones((5, 11)))
    with pytest.raises(ConfigError, match="no 'obs'"):
        load_observation_file(tmp_path / "bad.npz", [11])

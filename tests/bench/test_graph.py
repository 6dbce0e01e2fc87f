"""The ONNX graph counter agrees with the torch counters (edgerl.bench.macs)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgerl.bench.graph import count_graph
from edgerl.bench.macs import count_macs, count_params
from edgerl.checkpoint import load_checkpoint
from edgerl.errors import BundleError
from edgerl.export import export_policy
from edgerl.export.policy import policy_from_checkpoint


def _to_onnx(model: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the legacy exporter's deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (example,), buf, input_names=["obs"], output_names=["action"],
                          opset_version=18, dynamo=False, dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}})
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.parametrize("hidden", [[64, 64], [7, 13, 5]])
def test_mlp_counts_equal_torch(hidden):
    layers, last = [], 11
    for h in hidden:
        layers += [nn.Linear(last, h), nn.ReLU()]
        last = h
    mlp = nn.Sequential(*layers, nn.Linear(last, 3))
    x = torch.zeros(2, 11)
    counts = count_graph(_to_onnx(mlp, x))
    assert counts.macs == count_macs(mlp, x)
    assert counts.params == count_params(mlp)
    assert counts.layers == len(hidden) + 1


def test_conv_counts_equal_torch():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2, groups=2),
                        nn.ReLU(), nn.Flatten(), nn.Linear(4 * 7 * 7, 5))
    x = torch.zeros(2, 3, 16, 16)
    counts = count_graph(_to_onnx(net, x))
    assert counts.macs == count_macs(net, x)
    assert counts.params == count_params(net)


def test_matmul_add_bias_counted(tmp_path):
    """Linear layers exported as MatMul + Add: the Add's bias is a parameter."""
    rng = np.random.default_rng(0)
    w1, b1 = rng.standard_normal((11, 16)).astype(np.float32), np.zeros(16, np.float32)
    w2 = rng.standard_normal((16, 3)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["obs", "w1"], ["z"]), helper.make_node("Add", ["z", "b1"], ["h"]),
             helper.make_node("Relu", ["h"], ["r"]), helper.make_node("MatMul", ["r", "w2"], ["action"])]
    graph = helper.make_graph(
        nodes, "p", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", 11])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"))])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    counts = count_graph(path)
    assert counts.macs == 11 * 16 + 16 * 3
    assert counts.params == 11 * 16 + 16 + 16 * 3


def test_sac_policy_graph_drops_only_the_log_std_head(ckpt_pair, tmp_path):
    """The deployed graph computes the mean head only; torch counts every layer of the actor."""
    for path in ckpt_pair:
        policy = policy_from_checkpoint(load_checkpoint(path))
        report = export_policy(path, tmp_path / f"{path.parent.name}.onnx", recorded_steps=0, exporter="legacy")
        counts = count_graph(report.onnx_path)
        head = policy.net.log_std
        assert counts.macs == count_macs(policy, torch.zeros(1, 11)) - head.in_features * head.out_features
        assert counts.params == count_params(policy) - head.weight.numel() - head.bias.numel()


def test_unreadable_file_is_a_bundle_error(tmp_path):
    bad = tmp_path / "policy.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BundleError, match="not a readable ONNX model"):
        count_graph(bad)


@pytest.mark.parametrize("kind,gates", [("lstm", 4), ("gru", 3)])
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_recurrent_memory_counted_by_hand(kind, gates, exporter):
    """An LSTM/GRU memory: per step and layer gates x hidden x (input + hidden), in torch and in the graph."""
    from edgerl.export.onnx_io import export_onnx
    from edgerl.export.wrappers import ActionChainPolicy
    from edgerl.nets.recurrent import RecurrentMLP

    net = RecurrentMLP(5, 2, kind, rnn_hidden=6, rnn_layers=2, hidden=[4]).eval()
    by_hand = gates * 6 * (5 + 6) + gates * 6 * (6 + 6) + 6 * 4 + 4 * 2  # layer 0, layer 1, head
    x = torch.zeros(3, 5)
    assert count_macs(net, x, *net.zero_state(3)) == by_hand
    assert count_params(net.rnn) == gates * 6 * (5 + 6) + gates * 6 * (6 + 6) + 2 * (2 * gates * 6)  # + 2 biases
    model, used, _ = export_onnx(ActionChainPolicy(net, None, act_dim=2), x, None, exporter)
    assert used == exporter
    counts = count_graph(model)
    assert [n.op_type for n in model.graph.node].count(kind.upper()) == 2  # one node per layer
    assert counts.macs == by_hand
    assert counts.params == count_params(net)
    assert counts.layers == 4

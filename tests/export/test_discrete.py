"""The discrete path (DQN / PPO-discrete): uint8 image input, argmax, int64 action.

The image agents plug in through ``register_export``; until they land, a tiny conv net stands in.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.errors import ConfigError
from edgerl.export import (
    ArgmaxPolicy,
    ExportAdapter,
    argmax_policy,
    export_adapter,
    export_policy,
    policy_from_checkpoint,
    register_export,
)
from edgerl.nets import net_spec, register_net
from edgerl.runtime.contract import read_contract

OBS_SPACE = {"kind": "box", "shape": [3, 12, 12], "dtype": "uint8", "low": [0.0], "high": [255.0]}


@register_net("test_tiny_qcnn")
class TinyQCNN(nn.Module):
    """Conv -> ReLU -> Linear Q-network on uint8 pixels (scaled by 1/255 inside, like Impala)."""

    def __init__(self, in_channels: int, n_actions: int, channels: int, dueling_value: bool = False):
        super().__init__()
        self.in_channels, self.n_actions, self.channels = in_channels, n_actions, channels
        self.dueling_value = dueling_value
        self.conv = nn.Conv2d(in_channels, channels, 3, stride=2)
        self.head = nn.Linear(channels * 5 * 5, n_actions)
        self.value = nn.Linear(channels * 5 * 5, 1)

    def spec(self) -> dict:
        return {"in_channels": self.in_channels, "n_actions": self.n_actions, "channels": self.channels,
                "dueling_value": self.dueling_value}

    def forward(self, x: torch.Tensor):
        h = torch.relu(self.conv(x / 255.0)).flatten(1)
        return (self.head(h), self.value(h)) if self.dueling_value else self.head(h)


register_export(ExportAdapter(algo="test_dqn", nets=("q_net",), build=argmax_policy))


def _ckpt(path, n_actions: int = 5, start: int = 0, env_id: str = "EdgerlTestImage-v0"):
    torch.manual_seed(0)
    net = TinyQCNN(3, n_actions, 8)
    save_checkpoint(path, {
        "kind": "train", "algo": "test_dqn",
        "env": {"id": env_id, "observation_space": OBS_SPACE,
                "action_space": {"kind": "discrete", "n": n_actions, "shape": [], "dtype": "int64", "start": start}},
        "config": {"run": {}, "algo": {}, "prune": {}},
        "agent": {"nets": {"q_net": {"spec": net_spec(net), "state": net.state_dict()}}},
        "counters": {"global_step": 99},
    })
    return path


def _pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 12, 12), dtype=np.uint8)


def test_discrete_export_argmax_int64(tmp_path):
    ckpt = _ckpt(tmp_path / "ckpt.pt")
    report = export_policy(ckpt, recorded_obs=_pixels(70, seed=1))
    assert report.obs_dtype == "uint8" and report.action_dtype == "int64" and report.action_shape == []
    assert report.baked_in == ["argmax"] and report.parity.worst == 0.0
    assert set(report.parity.n_obs) == {"random", "recorded"} and "action-bounds" not in report.checks
    sess = ort.InferenceSession(report.onnx_path, providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(uint8)" and sess.get_outputs()[0].type == "tensor(int64)"
    policy = policy_from_checkpoint(load_checkpoint(ckpt))
    for batch in (1, 5, 64):
        obs = _pixels(batch, seed=batch)
        got = sess.run(["action"], {"obs": obs})[0]
        assert got.shape == (batch,) and got.dtype == np.int64
        np.testing.assert_array_equal(got, policy(torch.as_tensor(obs)).numpy())
    contract = read_contract(report.contract_path)
    assert contract.discrete and contract.n == 5 and contract.act_shape == () and contract.obs_dtype == np.uint8
    assert contract.raw["observation"]["low"] == [0.0]  # one entry: applies to every pixel
    assert any(n.op_type == "ArgMax" for n in onnx.load(report.onnx_path).graph.node)


def test_action_offset_is_baked_in():
    torch.manual_seed(0)
    net = TinyQCNN(3, 4, 8)
    env = {"action_space": {"kind": "discrete", "n": 4, "shape": [], "dtype": "int64", "start": 1}}
    policy = argmax_policy({"q_net": net}, None, env)
    assert policy.baked_in == ["argmax", "action_offset"]
    obs = torch.as_tensor(_pixels(64))
    with torch.no_grad():
        np.testing.assert_array_equal(policy(obs).numpy(), net(obs.float()).argmax(-1).numpy() + 1)


def test_tuple_output_selects_scores():
    torch.manual_seed(0)
    net = TinyQCNN(3, 6, 4, dueling_value=True)
    policy = ArgmaxPolicy(net, select=0)
    obs = torch.as_tensor(_pixels(16))
    with torch.no_grad():
        np.testing.assert_array_equal(policy(obs).numpy(), net(obs.float())[0].argmax(-1).numpy())


def test_unknown_env_rollout_fails_with_a_hint(tmp_path):
    ckpt = _ckpt(tmp_path / "ckpt.pt")
    with pytest.raises(ConfigError, match="--recorded-steps 0"):
        export_policy(ckpt)


def test_adapter_lookup():
    assert export_adapter("test_dqn").nets == ("q_net",)
    assert export_adapter("sac").nets == ("actor",)

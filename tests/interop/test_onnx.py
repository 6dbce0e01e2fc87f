"""``--from onnx``: a graph exported by someone else, wrapped with ``--io``, checked, bundled and run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgerl.errors import ConfigError
from edgerl.interop import ImportLayoutError
from edgerl.interop.io import parse_io
from edgerl.interop.onnx_policy import import_onnx

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter makes the foreign graph

IO = {"observation": {"terms": [{"name": "cos_sin", "size": 2, "scale": 2.0}, {"name": "vel", "size": 1}]},
      "normalizer": {"mean": [0.1, -0.2, 0.5], "std": [0.5, 1.5, 3.0], "eps": 0.01, "formula": "std"},
      "action": {"clip": 1.0, "scale": 2.0, "joint_names": ["torque"]}, "control_rate_hz": 20}


def _graph(tmp_path, discrete: bool = False) -> tuple[str, torch.nn.Module]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2 if discrete else 1))
    with torch.no_grad():
        net[2].weight.mul_(4.0)
    module = net if not discrete else _Argmax(net)
    path = tmp_path / "someone.onnx"
    torch.onnx.export(module.eval(), (torch.zeros(1, 3),), str(path), input_names=["input_0"],
                      output_names=["output_0"], dynamic_axes={"input_0": {0: "b"}, "output_0": {0: "b"}},
                      dynamo=False)
    return str(path), net


class _Argmax(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).argmax(-1)


def test_onnx_wrapped_with_io_matches_reference(tmp_path):
    import onnxruntime as ort

    src, net = _graph(tmp_path)
    res = import_onnx(src, tmp_path / "out", io=parse_io(IO), env_id="Pendulum-v1")
    assert res["baked_in"] == ["observation_scale", "observation_normalizer", "imported_onnx_graph", "action_clip",
                               "action_scale"]
    sess = ort.InferenceSession(str(tmp_path / "out" / "policy.onnx"), providers=["CPUExecutionProvider"])
    obs = np.random.default_rng(0).uniform(-3, 3, size=(1000, 3)).astype(np.float32)
    x = (obs * np.array([2, 2, 1], np.float32) - np.array([0.1, -0.2, 0.5], np.float32)) / \
        (np.array([0.5, 1.5, 3.0], np.float32) + np.float32(0.01))
    with torch.no_grad():
        raw = net(torch.as_tensor(x)).numpy()
    reference = np.clip(raw, -1, 1) * 2.0
    got = sess.run(["action"], {"obs": obs})[0]
    assert np.mean(np.abs(raw) > 1) > 0.05  # the clip is exercised
    gap = float(np.abs(got - reference).max())
    assert gap <= 1e-5, gap
    contract = json.loads((tmp_path / "out" / "contract.json").read_text())
    assert contract["action"]["low"] == [-2.0] and contract["io"]["control_rate_hz"] == 20
    print(f"onnx + io: max |diff| {gap:.2e}")


def test_onnx_bundle_runs(tmp_path):
    from edgerl.commands.run import run_bundle

    src, _ = _graph(tmp_path)
    io = parse_io({"action": {"clip": 1.0, "scale": 2.0}})
    import_onnx(src, tmp_path / "bundle", io=io, env_id="Pendulum-v1", target="x86-cpu")
    res = run_bundle(tmp_path / "bundle", None, 1, 0, None, None, False, 20)
    assert len(res["runtime_returns"]) == 1 and np.isfinite(res["runtime_returns"][0])


def test_onnx_discrete_needs_env_and_bad_widths(tmp_path):
    src, _ = _graph(tmp_path, discrete=True)
    with pytest.raises(ConfigError, match="pass --env"):
        import_onnx(src, tmp_path / "out")
    src, _ = _graph(tmp_path)
    with pytest.raises(ConfigError, match="observation terms sum to 2 entries but the network takes 3"):
        import_onnx(src, tmp_path / "out", io=parse_io({"observation": {"terms": [{"name": "a", "size": 2}]}}))
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ImportLayoutError, match="not an ONNX model|onnx.checker"):
        import_onnx(tmp_path / "junk.onnx", tmp_path / "out")

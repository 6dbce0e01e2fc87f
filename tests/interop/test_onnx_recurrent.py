"""``--from onnx`` with a recurrent graph: the state pairs named in ``--io``, renamed to the contract's
``h_in/h_out[, c_in/c_out]``, bundled, and run by the runtime's Policy with the state fed back and
reset, against ONNX Runtime on the original graph with the state fed back by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgerl.errors import ConfigError
from edgerl.interop import ImportLayoutError
from edgerl.interop.io import parse_io
from edgerl.interop.onnx_policy import import_onnx

ort = pytest.importorskip("onnxruntime")
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # the legacy exporter makes the foreign graph
              pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")]

OBS, ACT, HID = 3, 1, 8


class _IsaacLabStyle(torch.nn.Module):
    """What Isaac Lab's ``_OnnxPolicyExporter`` writes: ``(x_in, h_in[, c_in]) -> (actions, h, c)``,
    normaliser folded in, rnn -> MLP actor."""

    def __init__(self, kind: str, layers: int) -> None:
        super().__init__()
        self.kind = kind
        self.rnn = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(OBS, HID, num_layers=layers)
        self.actor = torch.nn.Sequential(torch.nn.Linear(HID, 16), torch.nn.Tanh(), torch.nn.Linear(16, ACT))
        with torch.no_grad():
            self.actor[2].weight.mul_(8.0)  # actions beyond the clip
            self.actor[2].bias.zero_()

    def forward(self, x: torch.Tensor, h: torch.Tensor, *c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.kind == "lstm":
            y, (h2, c2) = self.rnn(x.unsqueeze(0), (h, c[0]))
            return self.actor(y.squeeze(0)), h2, c2
        y, h2 = self.rnn(x.unsqueeze(0), h)
        return self.actor(y.squeeze(0)), h2


NAMES = {"lstm": (["obs", "h_in", "c_in"], ["actions", "h_out", "c_out"]),  # Isaac Lab's names
         "gru": (["observation", "memory"], ["mu", "memory_next"])}


def _graph(tmp_path, kind: str, layers: int = 1, dynamic: bool = False) -> str:
    torch.manual_seed(3)
    module = _IsaacLabStyle(kind, layers).eval()
    ins, outs = NAMES[kind]
    args = (torch.zeros(1, OBS), *(torch.zeros(layers, 1, HID) for _ in ins[1:]))
    axes = {n: {0: "b"} for n in (ins[0], outs[0])} | {n: {1: "b"} for n in (*ins[1:], *outs[1:])} if dynamic else {}
    path = tmp_path / f"{kind}.onnx"
    torch.onnx.export(module, args, str(path), input_names=ins, output_names=outs, opset_version=11,
                      dynamic_axes=axes, dynamo=False)
    return str(path)


def _io(kind: str, **extra) -> dict:
    ins, outs = NAMES[kind]
    return {"recurrent": {"kind": kind, "state": [{"input": i, "output": o} for i, o in zip(ins[1:], outs[1:], strict=True)],
                          "reset": "zeros_at_episode_start"}, **extra}


def _by_hand(src: str, kind: str, obs: np.ndarray, starts: np.ndarray, layers: int) -> np.ndarray:
    """ORT on the original graph, state fed back by hand and zeroed at episode starts."""
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    ins, outs = NAMES[kind]
    state = [np.zeros((layers, 1, HID), np.float32) for _ in ins[1:]]
    acts = []
    for o, start in zip(obs, starts, strict=True):
        if start:
            state = [np.zeros_like(s) for s in state]
        a, *state = sess.run(outs, {ins[0]: o[None], **dict(zip(ins[1:], state, strict=True))})
        acts.append(a[0])
    return np.asarray(acts)


@pytest.mark.parametrize("kind,layers,dynamic", [("lstm", 1, False), ("gru", 2, True)])
def test_recurrent_onnx_bundle_matches_original_with_state_fed_back(tmp_path, kind, layers, dynamic):
    from edgerl.runtime.policy import Policy

    src = _graph(tmp_path, kind, layers, dynamic)
    rng = np.random.default_rng(0)
    obs = rng.uniform(-2, 2, size=(1000, OBS)).astype(np.float32)
    starts = np.zeros(len(obs), bool)
    starts[rng.choice(np.arange(1, len(obs)), 12, replace=False)] = True
    starts[0] = True
    raw = _by_hand(src, kind, obs, starts, layers)
    clip = float(np.quantile(np.abs(raw), 0.7))  # about 30% of the actions clipped
    want = np.clip(raw, -clip, clip) * 2.0

    io = parse_io(_io(kind, action={"clip": clip, "scale": 2.0}))
    res = import_onnx(src, tmp_path / "bundle", io=io, env_id="Pendulum-v1", target="x86-cpu")
    assert res["recurrent"] == {"kind": kind, "state": ["h_in", "c_in"] if kind == "lstm" else ["h_in"],
                                "shape": [layers, 1, HID]}
    contract = json.loads((tmp_path / "bundle" / "contract.json").read_text())
    assert contract["recurrent"]["reset"] == "zeros_at_episode_start"
    with np.load(tmp_path / "bundle" / "reference.npz") as ref:  # the robot's load check resets mid-stream too
        assert ref["start"][0] and ref["start"][1:].any() and len(ref["start"]) == len(ref["obs"])
    with Policy.load(tmp_path / "bundle") as p:
        assert p.recurrent
        got = []
        for o, start in zip(obs, starts, strict=True):
            if start:
                p.reset()
            got.append(p.act(o))
    gap = float(np.abs(np.asarray(got) - want).max())
    assert gap <= 1e-5, gap
    no_reset = _by_hand(src, kind, obs, np.eye(1, len(obs), dtype=bool)[0], layers)
    assert np.abs(no_reset - raw).max() > 1e-3  # the resets matter
    print(f"onnx {kind} x{layers}: runtime vs original, {len(obs)} steps, {int(starts.sum())} resets: "
          f"max |diff| {gap:.2e}")


def test_recurrent_onnx_runs_in_pendulum(tmp_path):
    from edgerl.commands.run import run_bundle

    src = _graph(tmp_path, "lstm")
    import_onnx(src, tmp_path / "bundle", io=parse_io(_io("lstm", action={"clip": 2.0})), env_id="Pendulum-v1",
                target="x86-cpu")
    res = run_bundle(tmp_path / "bundle", None, 2, 0, None, None, False, 30)
    assert len(res["runtime_returns"]) == 2 and np.all(np.isfinite(res["runtime_returns"]))


def test_recurrent_onnx_refusals(tmp_path):
    src = _graph(tmp_path, "lstm")
    with pytest.raises(ImportLayoutError, match=r"inputs \['obs', 'h_in', 'c_in'\] and outputs \['actions', "
                                                r"'h_out', 'c_out'\].*name the pairs in --io: recurrent"):
        import_onnx(src, tmp_path / "out")
    bad = _io("lstm")
    bad["recurrent"]["state"][1]["input"] = "cell"
    with pytest.raises(ConfigError, match=r"names inputs \['cell'\] but the graph's inputs are \['obs', 'h_in', "
                                          r"'c_in'\]"):
        import_onnx(src, tmp_path / "out", io=parse_io(bad))
    swapped = {"recurrent": {"state": [{"input": "h_in", "output": "h_out"}]}}
    with pytest.raises(ImportLayoutError, match=r"besides the state --io names, the graph has inputs "
                                                r"\['obs', 'c_in'\] and outputs \['actions', 'c_out'\]"):
        import_onnx(src, tmp_path / "out", io=parse_io(swapped))
    with pytest.raises(ConfigError, match="runtime implements only \\['zeros_at_episode_start'\\]"):
        parse_io({"recurrent": {"state": [{"input": "h_in", "output": "h_out"}], "reset": "keep"}})
    with pytest.raises(ConfigError, match="recurrent.state has 1 pairs; a lstm memory has 2"):
        parse_io({"recurrent": {"kind": "lstm", "state": [{"input": "h_in", "output": "h_out"}]}})
    with pytest.raises(ConfigError, match="recurrent.kind is 'rnn'"):
        parse_io({"recurrent": {"kind": "rnn", "state": [{"input": "h_in", "output": "h_out"}]}})


def test_recurrent_state_shapes_must_pair(tmp_path):
    """A state output of another shape than its input: one line naming both."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((OBS, ACT), np.float32), "w")
    pad = numpy_helper.from_array(np.zeros((1, 1, 2), np.float32), "pad")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Concat", ["h", "pad"], ["h2"], axis=2)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, OBS]),
                                           helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, 1, HID])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, ACT]),
                               helper.make_tensor_value_info("h2", TensorProto.FLOAT, [1, 1, HID + 2])], [w, pad])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(tmp_path / "g.onnx"))
    io = parse_io({"recurrent": {"state": [{"input": "h", "output": "h2"}]}})
    with pytest.raises(ConfigError, match=r"pairs h \[1, 1, 8\] with h2 \[1, 1, 10\]"):
        import_onnx(tmp_path / "g.onnx", tmp_path / "out", io=io)


def test_onnx_import_to_a_c_only_target_is_refused(tmp_path):
    """A foreign ONNX graph has no C export: a microcontroller bundle of it would hold nothing to run."""
    from edgerl.runtime.errors import BundleError

    src = _graph(tmp_path, "lstm")
    with pytest.raises(BundleError, match="profile mcu-cortex-m4 runs only the generated C policy .* no policy.c"):
        import_onnx(src, tmp_path / "bundle", io=parse_io(_io("lstm", action={"clip": 2.0})), env_id="Pendulum-v1",
                    target="mcu-cortex-m4")
    assert not (tmp_path / "bundle").exists()

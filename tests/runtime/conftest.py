"""Tiny ONNX policies built with onnx.helper, reference actions computed with numpy, bundles."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgerl.runtime.bundle import write_bundle
from edgerl.runtime.profile import load_profile

OPSET = [helper.make_opsetid("", 18)]
OBS_DIM, HIDDEN, ACT_DIM = 11, 16, 3
LOW = np.array([-1.0, -2.0, 0.0])
HIGH = np.array([1.0, 0.5, 3.0])


def _init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(arr, name)


def _save(nodes: list, inits: list, inp: Any, out: Any, path: Path) -> Path:
    graph = helper.make_graph(nodes, "policy", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


class MLP:
    """obs -> Gemm -> Tanh -> Gemm -> [Tanh] -> *scale + offset: the exported graph's shape."""

    def __init__(self, seed: int = 0, squash: bool = True, gain: float = 1.0) -> None:
        rng = np.random.default_rng(seed)
        self.w1 = (rng.standard_normal((OBS_DIM, HIDDEN)) * 0.5).astype(np.float32)
        self.b1 = (rng.standard_normal(HIDDEN) * 0.1).astype(np.float32)
        self.w2 = (rng.standard_normal((HIDDEN, ACT_DIM)) * gain).astype(np.float32)
        self.b2 = (rng.standard_normal(ACT_DIM) * 0.1).astype(np.float32)
        self.scale = ((HIGH - LOW) / 2).astype(np.float32)
        self.offset = ((HIGH + LOW) / 2).astype(np.float32)
        self.squash = squash

    def numpy(self, obs: np.ndarray) -> np.ndarray:
        """What the training framework would compute (float64 math on float32-cast inputs)."""
        x = np.asarray(obs, np.float32).astype(np.float64)
        h = np.tanh(x @ self.w1 + self.b1)
        z = h @ self.w2 + self.b2
        if self.squash:
            z = np.tanh(z)
        return (z * self.scale + self.offset).astype(np.float32)

    def save(self, path: Path) -> Path:
        nodes = [
            helper.make_node("Gemm", ["obs", "w1", "b1"], ["z1"]),
            helper.make_node("Tanh", ["z1"], ["h1"]),
            helper.make_node("Gemm", ["h1", "w2", "b2"], ["z2"]),
        ]
        last = "z2"
        if self.squash:
            nodes.append(helper.make_node("Tanh", ["z2"], ["t2"]))
            last = "t2"
        nodes += [helper.make_node("Mul", [last, "scale"], ["m"]), helper.make_node("Add", ["m", "offset"], ["action"])]
        inits = [_init(k, getattr(self, k)) for k in ("w1", "b1", "w2", "b2", "scale", "offset")]
        inp = helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", OBS_DIM])
        out = helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", ACT_DIM])
        return _save(nodes, inits, inp, out, path)


def log_model(path: Path) -> Path:
    """action = log(obs[:, :3]): NaN for negative inputs (a misbehaving network)."""
    nodes = [
        helper.make_node("Slice", ["obs", "starts", "ends", "axes"], ["s"]),
        helper.make_node("Log", ["s"], ["action"]),
    ]
    inits = [_init("starts", np.array([0], np.int64)), _init("ends", np.array([ACT_DIM], np.int64)),
             _init("axes", np.array([1], np.int64))]
    inp = helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", OBS_DIM])
    out = helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", ACT_DIM])
    return _save(nodes, inits, inp, out, path)


def discrete_model(path: Path, n: int = 4, seed: int = 1) -> tuple[Path, np.ndarray]:
    """obs -> Gemm -> ArgMax: int64 [batch]."""
    w = np.random.default_rng(seed).standard_normal((OBS_DIM, n)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["obs", "w"], ["q"]),
             helper.make_node("ArgMax", ["q"], ["action"], axis=1, keepdims=0)]
    inp = helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", OBS_DIM])
    out = helper.make_tensor_value_info("action", TensorProto.INT64, ["batch"])
    return _save(nodes, [_init("w", w)], inp, out, path), w


def image_model(path: Path, shape: tuple[int, int, int] = (3, 8, 8), seed: int = 2) -> tuple[Path, np.ndarray]:
    """uint8 image -> /255 -> flatten -> MatMul -> Tanh."""
    w = (np.random.default_rng(seed).standard_normal((int(np.prod(shape)), 2)) * 0.05).astype(np.float32)
    nodes = [helper.make_node("Cast", ["obs"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["f", "k255"], ["x"]),
             helper.make_node("Flatten", ["x"], ["flat"], axis=1),
             helper.make_node("MatMul", ["flat", "w"], ["z"]),
             helper.make_node("Tanh", ["z"], ["action"])]
    inits = [_init("k255", np.array(255.0, np.float32)), _init("w", w)]
    inp = helper.make_tensor_value_info("obs", TensorProto.UINT8, ["batch", *shape])
    out = helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", 2])
    return _save(nodes, inits, inp, out, path), w


def contract(obs_shape: tuple[int, ...] = (OBS_DIM,), obs_dtype: str = "float64", act_shape: tuple[int, ...] = (ACT_DIM,),
             low: Any = LOW, high: Any = HIGH, discrete: bool = False, n: int | None = None) -> dict[str, Any]:
    """A contract.json mapping as the export side writes it."""
    return {
        "format": "edgerl-contract", "version": 1,
        "observation": {"name": "obs", "shape": list(obs_shape), "dtype": obs_dtype, "low": None, "high": None,
                        "names": None},
        "action": {"name": "action", "shape": list(act_shape), "dtype": "int64" if discrete else "float32",
                   "discrete": discrete, "n": n,
                   "low": None if low is None else np.asarray(low).tolist(),
                   "high": None if high is None else np.asarray(high).tolist()},
        # an unbounded contract comes from a graph that does not rescale (the parser requires bounds otherwise)
        "baked_in": ["observation_normalizer", "deterministic_head", "tanh_squash"]
        + ([] if discrete or low is None or high is None else ["action_rescale"]),
        "source": {"checkpoint": "ckpt.pt", "sha256": "0" * 64, "algo": "sac", "env_id": "Test-v0"},
        "versions": {"edgerl": "0.1.0", "torch": "none", "onnx": onnx.__version__, "opset": 18},
    }


def ref_obs(n: int = 32, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, OBS_DIM))  # float64, like MuJoCo


@pytest.fixture
def x86():
    return load_profile("x86-cpu")


@pytest.fixture
def mlp() -> MLP:
    return MLP()


@pytest.fixture
def make_bundle(tmp_path: Path, x86, mlp) -> Callable[..., Path]:
    """Write an MLP bundle for the x86-cpu profile; keyword arguments override write_bundle's."""
    counter = iter(range(1000))

    def make(**kw: Any) -> Path:
        i = next(counter)
        onnx_path = kw.pop("onnx_path", None) or mlp.save(tmp_path / f"policy{i}.onnx")
        obs = kw.pop("reference_obs", None)
        obs = ref_obs() if obs is None else obs
        actions = kw.pop("reference_actions", None)
        actions = mlp.numpy(obs) if actions is None else actions
        out = kw.pop("out_dir", tmp_path / f"bundle{i}")
        write_bundle(out, onnx_path, kw.pop("contract", contract()), obs, actions, kw.pop("profile", x86), **kw)
        return out

    return make


@pytest.fixture(scope="session")
def _master_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default x86-cpu MLP bundle, written once (each write fsyncs ~25 files)."""
    root = tmp_path_factory.mktemp("master")
    m = MLP()
    obs = ref_obs()
    out = root / "bundle"
    write_bundle(out, m.save(root / "policy.onnx"), contract(), obs, m.numpy(obs), load_profile("x86-cpu"))
    return out


@pytest.fixture
def bundle(_master_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the default bundle: tests may tamper with it."""
    out = tmp_path / "bundle"
    shutil.copytree(_master_bundle, out)
    return out

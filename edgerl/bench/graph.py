"""Parameter and MAC counts read from an ONNX graph (for bundles, where no torch module exists).

MACs count MatMul, Gemm and Conv per sample, as :func:`edgerl.bench.macs.count_macs` counts the
Linear and Conv layers of a torch module: ``output elements x reduction length``; a recurrent
memory's LSTM/GRU/RNN node counts ``steps x gates x hidden x (input + hidden)`` (the elements of
its ``W`` and ``R`` weights per step; one node per layer). Shapes come from
ONNX shape inference with the batch dimension fixed to 1. Parameters are the elements of the
initializers those nodes read (weights and biases, also through a Cast, Transpose, Identity or
DequantizeLinear), plus the bias of an Add that follows a MatMul, and an RNN node's ``W``, ``R``,
``B`` (and LSTM peepholes ``P``). Normaliser statistics, action
bounds and other constants are not parameters, as they are buffers in torch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from edgerl.errors import BackendUnavailableError, BundleError

COUNTED_OPS = ("MatMul", "Gemm", "Conv")
RNN_OPS = ("LSTM", "GRU", "RNN")
"""ONNX recurrent nodes: inputs ``X, W, R, B, sequence_lens, initial_h[, initial_c, P]``."""
_PASS_THROUGH = ("Cast", "Transpose", "Identity", "DequantizeLinear", "Reshape")


@dataclass(frozen=True)
class GraphCounts:
    """Counts of one ONNX graph."""

    params: int
    """Elements of the weight and bias initializers of MatMul/Gemm/Conv (and MatMul's Add bias) and
    of LSTM/GRU/RNN nodes."""
    macs: int
    """Multiply-accumulates of MatMul/Gemm/Conv and LSTM/GRU/RNN for one sample (one control step)."""
    layers: int
    """Number of MatMul/Gemm/Conv and LSTM/GRU/RNN nodes counted."""


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as e:
        raise BackendUnavailableError(f"counting an ONNX graph needs the onnx package ({e}); pip install onnx") from None
    return onnx


def _static_batch(model: Any) -> Any:
    """A copy of ``model`` whose graph inputs have batch dimension 1, shapes inferred."""
    onnx = _import_onnx()
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for inp in m.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1
    return onnx.shape_inference.infer_shapes(m, strict_mode=False)


def _shapes(graph: Any) -> dict[str, tuple[int | None, ...]]:
    out: dict[str, tuple[int | None, ...]] = {t.name: tuple(int(d) for d in t.dims) for t in graph.initializer}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            out.setdefault(vi.name, tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim))
    return out


def _numel(shape: tuple[int | None, ...] | None) -> int | None:
    if shape is None or any(d is None for d in shape):
        return None
    return math.prod(shape)  # type: ignore[arg-type]


def _reduction(node: Any, shapes: dict[str, tuple[int | None, ...]]) -> int | None:
    """Length of the dot product behind each output element of a MatMul/Gemm/Conv node."""
    if node.op_type == "Conv":
        w = shapes.get(node.input[1])
        return None if w is None or len(w) < 2 else _numel(w[1:])
    a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
    if node.op_type == "Gemm":
        attrs = {at.name: at.i for at in node.attribute}
        if b is not None and len(b) == 2:
            return b[1] if attrs.get("transB", 0) else b[0]
        if a is not None and len(a) == 2:
            return a[0] if attrs.get("transA", 0) else a[1]
        return None
    if a is not None and len(a) >= 1:
        return a[-1]
    return b[0] if b is not None and len(b) >= 2 else None


def _rnn_steps(node: Any, shapes: dict[str, tuple[int | None, ...]]) -> int | None:
    x = shapes.get(node.input[0])
    layout = next((at.i for at in node.attribute if at.name == "layout"), 0)
    return None if x is None or len(x) != 3 else x[1 if layout else 0]


def _rnn_macs(node: Any, shapes: dict[str, tuple[int | None, ...]], steps: int | None) -> int:
    """Per-sample MACs of an LSTM/GRU/RNN node: ``steps x (|W| + |R|)``, i.e. per step and direction
    ``gates x hidden x (input + hidden)`` (the gates' matrix products; element-wise gate maths left out)."""
    w, r = shapes.get(node.input[1]), shapes.get(node.input[2])
    per_step = None if _numel(w) is None or _numel(r) is None else _numel(w) + _numel(r)  # type: ignore[operator]
    if steps is None or per_step is None:
        raise BundleError(f"cannot count {node.op_type} node {node.name or node.output[0]!r}: its sequence length or "
                          "weight shapes are unknown after ONNX shape inference")
    return int(steps * per_step)


def count_graph(model_or_path: Any) -> GraphCounts:
    """Parameters and per-sample MACs of an ONNX model (a ``ModelProto`` or a file path).

    Raises:
        BundleError: The file is unreadable, or a counted node's shapes cannot be inferred.
        BackendUnavailableError: The onnx package is not installed.
    """
    onnx = _import_onnx()
    if isinstance(model_or_path, (str, os.PathLike)):
        try:
            model = onnx.load(os.fspath(model_or_path))
        except Exception as e:  # protobuf decode errors, missing external data, I/O
            raise BundleError(f"{model_or_path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    else:
        model = model_or_path
    inferred = _static_batch(model)
    graph = inferred.graph
    shapes = _shapes(graph)
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}

    def initializer_of(name: str, depth: int = 0) -> str | None:
        if name in inits:
            return name
        node = producers.get(name)
        if node is None or depth > 3 or node.op_type not in _PASS_THROUGH or not node.input:
            return None
        return initializer_of(node.input[0], depth + 1)

    param_names: set[str] = set()
    macs = layers = 0
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    # A stacked memory's upper layers read the layer below through a Reshape whose shape inference
    # loses the sequence length (the dynamo exporter): they run as many steps as the first layer.
    known_steps = [s for s in (_rnn_steps(n, shapes) for n in graph.node if n.op_type in RNN_OPS) if s is not None]
    for node in graph.node:
        if node.op_type in RNN_OPS:
            steps = _rnn_steps(node, shapes)
            macs += _rnn_macs(node, shapes, steps if steps is not None else next(iter(known_steps), None))
            layers += 1
            param_names.update(n for n in (initializer_of(node.input[i]) for i in (1, 2, 3, 7)
                                           if i < len(node.input) and node.input[i]) if n is not None)
            continue
        if node.op_type not in COUNTED_OPS:
            continue
        k = _reduction(node, shapes)
        out_shape = shapes.get(node.output[0])
        if node.op_type == "Gemm" and out_shape is not None and len(out_shape) == 2 and out_shape[0] is None:
            out_shape = (1, out_shape[1])  # a Gemm's rows are the batch (lost behind a stacked RNN's Reshape)
        out = _numel(out_shape)
        if k is None or out is None:
            raise BundleError(f"cannot count {node.op_type} node {node.name or node.output[0]!r}: its shapes are "
                              "unknown after ONNX shape inference (dynamic non-batch dimensions?)")
        macs += out * k
        layers += 1
        names = [initializer_of(i) for i in node.input[1:] if i]
        if node.op_type == "MatMul":  # Linear exported as MatMul + Add(bias)
            for add in consumers.get(node.output[0], []):
                if add.op_type == "Add":
                    names += [initializer_of(i) for i in add.input if i != node.output[0]]
        param_names.update(n for n in names if n is not None)
    params = sum(math.prod(inits[n].dims) for n in param_names)
    return GraphCounts(params=int(params), macs=int(macs), layers=layers)

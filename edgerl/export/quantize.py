"""INT8: an explicitly quantized (QDQ) copy of an exported float32 policy graph.

Built with ONNX Runtime's static quantization (``quant_pre_process`` then ``quantize_static``):
per-channel symmetric QInt8 weights, QUInt8 (or QInt8) activations, QuantizeLinear/DequantizeLinear
pairs around the network's layers. That form runs on ONNX Runtime's CPU provider (fused into
integer kernels) and is what strongly typed TensorRT (>= 10 with the flag, 11 always) builds INT8
kernels from. Activation ranges come from observations the policy actually sees: the run's replay
buffer, recorded rollouts, or a user's file, never random noise.

The graph's float ends stay float: every node before the first weighted layer (observation cast,
normaliser, pixel scaling) and after the last one (tanh squash, action rescale, argmax) is excluded
from quantization, so observations and actions keep their float32 meaning.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edgerl.errors import BackendUnavailableError, ConfigError
from edgerl.export.errors import ExportError
from edgerl.export.observations import latest_replay, load_observation_file  # noqa: F401 (re-exported)
from edgerl.export.onnx_io import EXPORT_HINT, INPUT_NAME, import_onnx

PRECISIONS = ("fp32", "fp16", "int8")
"""Precisions ``edgerl export/deploy --precision`` accepts."""
WEIGHT_OPS = ("Conv", "Gemm", "MatMul")
"""Layers with weights: the quantized region spans from the first to the last of these."""
QUANT_OPS = ("Conv", "Gemm", "MatMul", "Add", "MaxPool", "Relu", "Flatten", "Reshape")
"""Op types quantized inside that region (ONNX Runtime fuses Q/DQ around them into integer kernels)."""
ACTIVATION_TYPES = ("quint8", "qint8")
CALIBRATION_OBS = 1024
"""Observations the activation ranges are calibrated on (the rest of a source is held out)."""
HELD_OUT_OBS = 512
"""Held-out observations the error statistics are also computed on."""
CALIBRATION_BATCH = 32
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def _import_quantization() -> Any:
    try:
        from onnxruntime import quantization
    except ImportError as e:
        raise BackendUnavailableError(f"onnxruntime.quantization is not available ({e}); {EXPORT_HINT}") from None
    return quantization


def check_precision_name(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a one-line :class:`ConfigError`."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision


def name_nodes(model: Any) -> None:
    """Give every unnamed node a unique name (quantization excludes nodes by name)."""
    used = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"edgerl_{node.op_type.lower()}_{i}"
            while name in used:
                name += "_"
            node.name = name
            used.add(name)


def float_end_nodes(model: Any) -> list[str]:
    """Names of the nodes before the first and after the last weighted layer (stay float).

    A node is in the float prefix if it feeds a weighted layer but no weighted layer feeds it (the
    normaliser, the uint8 -> float cast, pixel scaling); in the float suffix if a weighted layer
    feeds it but it feeds none (squash, rescale, argmax). Nodes on no path to or from a weighted
    layer (constants) are left out of quantization too.
    """
    nodes = list(model.graph.node)
    producer = {out: i for i, n in enumerate(nodes) for out in n.output}
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for inp in n.input:
            consumers.setdefault(inp, []).append(i)
    weighted = [i for i, n in enumerate(nodes) if n.op_type in WEIGHT_OPS]

    def closure(start: list[int], step: Any) -> set[int]:
        seen: set[int] = set()
        todo = list(start)
        while todo:
            i = todo.pop()
            for j in step(i):
                if j not in seen:
                    seen.add(j)
                    todo.append(j)
        return seen

    below = closure(weighted, lambda i: [j for o in nodes[i].output for j in consumers.get(o, [])])
    above = closure(weighted, lambda i: [producer[x] for x in nodes[i].input if x in producer])
    inside = set(weighted) | (below & above)
    return [nodes[i].name for i in range(len(nodes)) if i not in inside]


class _Reader:
    """ONNX Runtime CalibrationDataReader over an observation array, in small batches."""

    def __init__(self, obs: np.ndarray, batch: int = CALIBRATION_BATCH) -> None:
        self._batches: Iterator[np.ndarray] = iter([obs[i:i + batch] for i in range(0, len(obs), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._batches, None)
        return None if x is None else {INPUT_NAME: x}

    def __len__(self) -> int:  # some ORT versions size progress by it
        return 0


def weighted_nodes(model: Any) -> list[str]:
    """Names of the Conv/Gemm/MatMul nodes in graph order (first: reads the observation; last:
    writes the action scores or the pre-squash mean)."""
    return [n.name for n in model.graph.node if n.op_type in WEIGHT_OPS]


def quantize_int8(model: Any, calibration: np.ndarray, activation_type: str = "quint8",
                  per_channel: bool = True, calibrate_method: str = "minmax",
                  first_layer_float: bool | None = None, last_layer_float: bool | None = None) -> tuple[Any, list[str]]:
    """The QDQ INT8 model of a float32 policy graph, calibrated on ``calibration``.

    Args:
        model: The exported float32 ``onnx.ModelProto`` (input ``obs``, output ``action``).
        calibration: Observations in the graph's input dtype, ``[n, *obs_shape]``, n >= 1.
        activation_type: ``quint8`` (x86 VNNI's u8 x s8 kernels) or ``qint8``.
        per_channel: One weight scale per output channel (True) or per tensor.
        calibrate_method: ``minmax`` or ``percentile`` (99.999th percentile of |activation|).
        first_layer_float: Keep the layer reading the observation in float. None: yes for vector
            observations, whose entries span very different ranges (one int8 scale for a joint
            angle in +-0.6 and a velocity in +-27 leaves the angle 3 levels), no for uint8 images
            (pixels share one range, and the first conv is where an image net spends its time).
        last_layer_float: Keep the layer writing the pre-squash mean / the scores in float. None:
            same as ``first_layer_float`` (a small MLP head holds few MACs; its int8 output
            step is what |a_q - a_fp32| sees first).

    Returns:
        ``(quantized ModelProto, names of the nodes kept float)``.

    Raises:
        ConfigError: Empty calibration set or a bad option. ExportError: quantization failed.
    """
    if activation_type not in ACTIVATION_TYPES:
        raise ConfigError(f"activation type {activation_type!r} is not one of {', '.join(ACTIVATION_TYPES)}")
    if calibrate_method not in ("minmax", "percentile"):
        raise ConfigError(f"calibration method {calibrate_method!r} is not minmax or percentile")
    if len(calibration) == 0:
        raise ConfigError("no calibration observations: pass --observations FILE.npz or allow a rollout")
    onnx = import_onnx()
    q = _import_quantization()
    with tempfile.TemporaryDirectory(prefix="edgerl-int8-") as tmp:
        src, pre, out = (Path(tmp) / f for f in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(model, os.fspath(src))
        try:
            q.quant_pre_process(os.fspath(src), os.fspath(pre), skip_symbolic_shape=False)
            prepared = onnx.load(os.fspath(pre))
            name_nodes(prepared)
            onnx.save(prepared, os.fspath(pre))
            keep_float = float_end_nodes(prepared)
            if first_layer_float is None:
                first_layer_float = np.asarray(calibration).dtype != np.uint8
            if last_layer_float is None:
                last_layer_float = first_layer_float
            layers = weighted_nodes(prepared)
            if first_layer_float and layers:
                keep_float.append(layers[0])
            if last_layer_float and len(layers) > 1:
                keep_float.append(layers[-1])
            q.quantize_static(
                os.fspath(pre), os.fspath(out), _Reader(np.ascontiguousarray(calibration)),
                quant_format=q.QuantFormat.QDQ, per_channel=per_channel,
                activation_type=q.QuantType.QUInt8 if activation_type == "quint8" else q.QuantType.QInt8,
                weight_type=q.QuantType.QInt8, op_types_to_quantize=list(QUANT_OPS), nodes_to_exclude=keep_float,
                calibrate_method=q.CalibrationMethod.MinMax if calibrate_method == "minmax"
                else q.CalibrationMethod.Percentile,
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": activation_type == "qint8"},
            )
        except (ConfigError, BackendUnavailableError):
            raise
        except Exception as e:  # the quantization tool raises many kinds
            msg = re.sub(r"\s+", " ", str(e)).strip()[:300]
            raise ExportError(f"ONNX Runtime could not quantize the policy to INT8 ({type(e).__name__}: {msg}); "
                              "export --precision fp16 or fp32 instead, and report the network type") from None
        quantized = onnx.load(os.fspath(out))
    if not any(n.op_type in QDQ_OPS for n in quantized.graph.node):
        raise ExportError("INT8 quantization produced no QuantizeLinear/DequantizeLinear nodes (the graph has no "
                          "quantizable layer); export --precision fp32 instead")
    # Metadata and doc string of the float graph carry over (pre-processing may drop them).
    quantized.producer_name, quantized.doc_string = model.producer_name, model.doc_string
    del quantized.metadata_props[:]
    for p in model.metadata_props:
        quantized.metadata_props.add(key=p.key, value=p.value)
    return quantized, keep_float


def split_observations(obs: np.ndarray, seed: int = 0, n_calib: int = CALIBRATION_OBS,
                       n_held: int = HELD_OUT_OBS) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle and split into (calibration, held-out); at least a fifth is held out."""
    order = np.random.default_rng(seed).permutation(len(obs))
    n_cal = min(n_calib, max(1, len(obs) - max(1, len(obs) // 5)))
    return obs[order[:n_cal]], obs[order[n_cal:n_cal + n_held]]

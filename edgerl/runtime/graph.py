"""What an ONNX graph actually computes in, read from the file without the ``onnx`` package.

The robot has numpy and ONNX Runtime but not necessarily ``onnx``, and the precision a bundle
*says* it runs is not proof: a "fp16" or "int8" graph exported wrongly is float32 and runs
silently at full precision. :func:`graph_content` walks the protobuf wire format of the model
(graph nodes and initializers only) and :func:`graph_precision` names the precision it finds.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulInteger",
                           "ConvInteger", "DynamicQuantizeLinear", "QGemm", "QLinearAdd"})
"""Ops whose presence means integer (int8/uint8) compute."""
_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
           10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """``(field number, wire type, value)`` of one message: ints for varints, bytes otherwise."""
    out: list[tuple[int, int, Any]] = []
    i, n = 0, len(buf)
    while i < n:
        value: Any
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((num, wire, value))
    return out


def model_content(model: bytes) -> dict[str, Any]:
    """``{"ops": {op_type: count}, "initializer_dtypes": {dtype: count}}`` of a serialized model.

    Raises:
        ValueError: The bytes are not an ONNX model with a graph.
    """
    try:
        graphs = [v for num, wire, v in _fields(model) if num == 7 and wire == 2]
        if not graphs:
            raise ValueError("no graph")
        ops: Counter[str] = Counter()
        dtypes: Counter[str] = Counter()
        for num, wire, value in _fields(graphs[0]):
            if num == 1 and wire == 2:  # NodeProto: op_type is field 4
                ops.update(v.decode() for f, w, v in _fields(value) if f == 4 and w == 2)
            elif num == 5 and wire == 2:  # TensorProto: data_type is field 2
                dtypes.update(_DTYPES.get(v, str(v)) for f, w, v in _fields(value) if f == 2 and w == 0)
    except (IndexError, UnicodeDecodeError) as e:
        raise ValueError(f"not an ONNX model ({type(e).__name__})") from None
    return {"ops": dict(sorted(ops.items())), "initializer_dtypes": dict(sorted(dtypes.items()))}


def graph_content(path: str | os.PathLike) -> dict[str, Any]:
    """:func:`model_content` of an ``.onnx`` file."""
    with open(path, "rb") as f:
        return model_content(f.read())


def graph_precision(content: dict[str, Any]) -> str:
    """``int8`` (quantize/dequantize or integer ops), ``fp16`` (float16 weights) or ``fp32``."""
    if QUANTIZED_OPS & set(content["ops"]):
        return "int8"
    if content["initializer_dtypes"].get("float16", 0) > 0:
        return "fp16"
    return "fp32"

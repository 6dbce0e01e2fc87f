"""The observation/action contract of an exported policy (``contract.json`` in a bundle)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BundleError

CONTRACT_FORMAT = "edgerl-contract"
CONTRACT_VERSION = 1
PRECISIONS = ("fp32", "fp16", "int8")
"""What a graph may compute in (``precision`` in the contract)."""


@dataclass(frozen=True)
class Contract:
    """Parsed contract: shapes, dtypes and bounds the runtime checks against."""

    obs_shape: tuple[int, ...]
    """Shape of ONE observation as the environment returns it."""
    obs_dtype: np.dtype
    """The environment's observation dtype (float64 for MuJoCo, uint8 for images)."""
    act_shape: tuple[int, ...]
    """Shape of ONE action (``()`` for a discrete action)."""
    act_dtype: np.dtype
    """dtype of the returned action (float32, or int64 for discrete)."""
    discrete: bool
    """True for a discrete action space; ``act`` then returns a Python int."""
    n: int | None
    """Number of discrete actions (None for continuous)."""
    act_low: np.ndarray | None
    """Lower action bounds in ``act_shape`` (-inf where unbounded), None if unbounded."""
    act_high: np.ndarray | None
    """Upper action bounds in ``act_shape`` (+inf where unbounded), None if unbounded."""
    raw: dict[str, Any]
    """The JSON document as read."""
    precision: str = "fp32"
    """What the exported graph computes in: ``fp32``, ``fp16`` or ``int8`` (Q/DQ nodes)."""


def _fail(source: str, msg: str) -> BundleError:
    return BundleError(f"{source}: {msg}; re-export the policy (edgerl export) and re-run edgerl deploy")


def _shape(v: Any, key: str, source: str) -> tuple[int, ...]:
    if not isinstance(v, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in v):
        raise _fail(source, f"{key} must be a list of positive integers, got {v!r}")
    return tuple(v)


def _dtype(v: Any, key: str, source: str) -> np.dtype:
    try:
        return np.dtype(v)
    except TypeError:
        raise _fail(source, f"{key} {v!r} is not a numpy dtype name") from None


def _bound(v: Any, shape: tuple[int, ...], fill: float, key: str, source: str) -> np.ndarray | None:
    """Bounds as float64 in ``shape``; null entries mean unbounded."""
    if v is None:
        return None
    arr = np.asarray(v, dtype=object)
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise _fail(source, f"{key} has {arr.size} entries but the shape {list(shape)} needs "
                            f"{int(np.prod(shape, dtype=np.int64))}")
    try:
        flat = [fill if x is None else float(x) for x in arr.reshape(-1)]
    except (TypeError, ValueError):
        raise _fail(source, f"{key} must hold numbers or null, got {v!r}") from None
    return np.asarray(flat, dtype=np.float64).reshape(shape)


def parse_contract(data: Any, source: str = "contract.json") -> Contract:
    """Validate a contract mapping.

    Raises:
        BundleError: Wrong format/version, missing key or bad value (names the key).
    """
    if not isinstance(data, dict):
        raise _fail(source, "must be a JSON object")
    if data.get("format") != CONTRACT_FORMAT:
        raise _fail(source, f"'format' is {data.get('format')!r}, expected {CONTRACT_FORMAT!r}")
    if data.get("version") != CONTRACT_VERSION:
        raise _fail(source, f"'version' is {data.get('version')!r}; this runtime reads version {CONTRACT_VERSION}")
    obs, act = data.get("observation"), data.get("action")
    if not isinstance(obs, dict) or not isinstance(act, dict):
        raise _fail(source, "needs 'observation' and 'action' objects")
    for sect, name, expected in ((obs, "observation", "obs"), (act, "action", "action")):
        if sect.get("name", expected) != expected:
            raise _fail(source, f"{name}.name is {sect.get('name')!r}; the ONNX tensor must be named {expected!r}")
    obs_shape = _shape(obs.get("shape"), "observation.shape", source)
    discrete = act.get("discrete", False)
    if not isinstance(discrete, bool):
        raise _fail(source, f"action.discrete must be true or false, got {discrete!r}")
    act_shape = _shape(act.get("shape"), "action.shape", source)
    n = act.get("n")
    if discrete and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise _fail(source, f"action.n must be a positive integer for a discrete action, got {n!r}")
    if discrete and act_shape != ():
        raise _fail(source, f"action.shape must be [] for a discrete action (one index), got {list(act_shape)}")
    act_dtype = _dtype(act.get("dtype", "int64" if discrete else "float32"), "action.dtype", source)
    if discrete != (act_dtype.kind in "iu"):
        raise _fail(source, f"action.dtype {act_dtype} does not match action.discrete={discrete}")
    low = _bound(act.get("low"), act_shape, -np.inf, "action.low", source)
    high = _bound(act.get("high"), act_shape, np.inf, "action.high", source)
    if low is not None and high is not None and np.any(low > high):
        raise _fail(source, "action.low exceeds action.high")
    precision = data.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise _fail(source, f"precision {precision!r} is not one of {list(PRECISIONS)}")
    return Contract(
        obs_shape=obs_shape,
        obs_dtype=_dtype(obs.get("dtype", "float32"), "observation.dtype", source),
        act_shape=act_shape,
        act_dtype=act_dtype,
        discrete=discrete,
        n=n if discrete else None,
        act_low=None if discrete else low,
        act_high=None if discrete else high,
        raw=data,
        precision=precision,
    )


def read_contract(path: str | os.PathLike) -> Contract:
    """Read and validate ``contract.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} is missing; re-run edgerl deploy") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"{path}: malformed JSON ({e}); re-run edgerl deploy") from None
    return parse_contract(data, source=str(path))

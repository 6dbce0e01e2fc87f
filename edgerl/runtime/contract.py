"""The observation/action contract of an exported policy (``contract.json`` in a bundle)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BundleError

CONTRACT_FORMAT = "edgerl-contract"
CONTRACT_VERSION = 1
MAX_ABS_BOUND = 1e6
"""Largest magnitude of a finite action bound: beyond it a bound is a mistake, not a limit
(use null for an unbounded side where the graph does not rescale to it)."""
MAX_ELEMENTS = 1 << 24
"""Largest number of entries of one observation or action."""
MAX_DISCRETE_N = 1 << 31
OBS_DTYPES = ("float16", "float32", "float64", "uint8", "int8", "int16", "int32", "int64", "uint16", "bool")
"""Observation dtypes a contract may name (what environments return)."""
ACT_DTYPES = {False: ("float16", "float32", "float64"), True: ("int32", "int64", "uint8", "int8", "int16", "uint16",
                                                              "uint32", "uint64")}
"""Action dtypes by ``action.discrete``: real floats for continuous actions, integers for discrete ones."""
PRECISIONS = ("fp32", "fp16", "int8")
"""What a graph may compute in (``precision`` in the contract)."""
RECURRENT_STATES = {"lstm": ("h", "c"), "gru": ("h",)}
"""State tensors of each recurrent kind, in graph order: input ``<name>_in``, output ``<name>_out``."""
RESET_RULES = ("zeros_at_episode_start",)
"""When the control loop resets a recurrent state, and to what."""


def state_io_names(kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(inputs, outputs)`` state tensor names of a recurrent ``kind`` (``h_in``, ``c_in`` / ``h_out``, ...)."""
    names = RECURRENT_STATES[kind]
    return tuple(f"{n}_in" for n in names), tuple(f"{n}_out" for n in names)


@dataclass(frozen=True)
class ObservationRanges:
    """Plausible observation ranges from the ``io`` terms' ``low``/``high``, flattened once for ``act``."""

    low: np.ndarray
    """float64 per observation element (-inf where a term gives no lower bound)."""
    high: np.ndarray
    """float64 per observation element (+inf where unbounded)."""
    terms: tuple[tuple[str, int, int, str | None], ...]
    """``(name, first element, size, unit)`` of each term, in order (to name the offending element)."""

    def where(self, i: int) -> str:
        """``joint_pos[3]``: the term and element of flat observation element ``i``."""
        for name, start, size, _ in self.terms:
            if start <= i < start + size:
                return f"{name}[{i - start}]" if size > 1 else name
        return f"element {i}"

    def unit(self, i: int) -> str:
        return next((f" {u}" for _, start, size, u in self.terms if start <= i < start + size and u), "")


@dataclass(frozen=True)
class RecurrentSpec:
    """The ``recurrent`` section: the state a recurrent graph takes and returns beside obs/action."""

    kind: str
    """``lstm`` (state h, c) or ``gru`` (state h)."""
    inputs: tuple[str, ...]
    """Graph inputs of the state, in order (``h_in``, ``c_in``)."""
    outputs: tuple[str, ...]
    """Graph outputs of the next state, paired with :attr:`inputs` (``h_out``, ``c_out``)."""
    shape: tuple[int, ...]
    """One state tensor at batch 1: ``(layers, 1, hidden)``."""
    reset: str
    """When and how the state is reset: ``zeros_at_episode_start``."""


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
    recurrent: RecurrentSpec | None = None
    """The state of a recurrent policy (None: feed-forward)."""
    obs_ranges: ObservationRanges | None = field(default=None, init=False, compare=False)
    """Plausible observation ranges of the ``io`` terms (None when no term gives one)."""

    def __post_init__(self) -> None:
        ranges = parse_io_section(self.raw.get("io"), self.obs_shape, self.act_shape, "contract.json")
        object.__setattr__(self, "obs_ranges", ranges)


def _fail(source: str, msg: str) -> BundleError:
    return BundleError(f"{source}: {msg}; re-export the policy (edgerl export) and re-run edgerl deploy")


def _shape(v: Any, key: str, source: str) -> tuple[int, ...]:
    if not isinstance(v, list) or len(v) > 8 or not all(type(d) is int and d > 0 for d in v):
        raise _fail(source, f"{key} must be a list of at most 8 positive integers, got {_short(v)}")
    if int(np.prod(v, dtype=object)) > MAX_ELEMENTS:
        raise _fail(source, f"{key} {v} has more than {MAX_ELEMENTS} entries")
    return tuple(v)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _dtype(v: Any, key: str, source: str, allowed: tuple[str, ...]) -> np.dtype:
    if not isinstance(v, str) or v not in allowed:
        raise _fail(source, f"{key} is {_short(v)}; expected one of {list(allowed)}")
    return np.dtype(v)


def _bound(v: Any, shape: tuple[int, ...], fill: float, key: str, source: str) -> np.ndarray | None:
    """Bounds as float64 in ``shape``; null entries mean unbounded."""
    if v is None:
        return None
    try:
        arr = np.asarray(v, dtype=object)
    except (ValueError, RecursionError):
        raise _fail(source, f"{key} must be a list of numbers or null, got {_short(v)}") from None
    if arr.size != int(np.prod(shape, dtype=np.int64)):
        raise _fail(source, f"{key} has {arr.size} entries but the shape {list(shape)} needs "
                            f"{int(np.prod(shape, dtype=np.int64))}")
    flat = arr.reshape(-1).tolist()
    if not all(x is None or (type(x) in (int, float)) for x in flat):
        raise _fail(source, f"{key} must hold numbers or null, got {_short(v)}")
    for i, x in enumerate(flat):
        if x is not None and not (abs(x) <= MAX_ABS_BOUND):  # NaN and infinity fail too
            raise _fail(source, f"{key}[{i}] is {x!r}; a bound must be a finite number of magnitude at most "
                                f"{MAX_ABS_BOUND:g} (null for an unbounded side)")
    return np.asarray([fill if x is None else float(x) for x in flat], dtype=np.float64).reshape(shape)


def _check_bounds(low: np.ndarray | None, high: np.ndarray | None, baked_in: list[str], source: str) -> None:
    """Continuous bounds: ordered, and finite everywhere if the graph rescales actions into them."""
    if low is not None and high is not None:
        bad = np.flatnonzero(~(low < high).reshape(-1))
        if bad.size:
            i = int(bad[0])
            raise _fail(source, f"action.low[{i}] = {low.reshape(-1)[i]:g} is not below action.high[{i}] = "
                                f"{high.reshape(-1)[i]:g}")
    if "action_rescale" in baked_in:
        for key, b in (("action.low", low), ("action.high", high)):
            if b is None or not np.isfinite(b).all():
                raise _fail(source, f"{key} must give a number for every entry: the graph rescales actions into "
                                    "the bounds (baked_in has action_rescale)")


def parse_contract(data: Any, source: str = "contract.json") -> Contract:
    """Validate a contract mapping.

    Raises:
        BundleError: Wrong format/version, missing key or bad value (names the key).
    """
    if not isinstance(data, dict):
        raise _fail(source, "must be a JSON object")
    if data.get("format") != CONTRACT_FORMAT:
        raise _fail(source, f"'format' is {_short(data.get('format'))}, expected {CONTRACT_FORMAT!r}")
    if type(data.get("version")) is not int or data.get("version") != CONTRACT_VERSION:
        raise _fail(source, f"'version' is {_short(data.get('version'))}; this runtime reads version {CONTRACT_VERSION}")
    obs, act = data.get("observation"), data.get("action")
    if not isinstance(obs, dict) or not isinstance(act, dict):
        raise _fail(source, "needs 'observation' and 'action' objects")
    for sect, name, expected in ((obs, "observation", "obs"), (act, "action", "action")):
        if sect.get("name", expected) != expected:
            raise _fail(source, f"{name}.name is {_short(sect.get('name'))}; the ONNX tensor must be named {expected!r}")
    obs_shape = _shape(obs.get("shape"), "observation.shape", source)
    discrete = act.get("discrete", False)
    if not isinstance(discrete, bool):
        raise _fail(source, f"action.discrete must be true or false, got {_short(discrete)}")
    act_shape = _shape(act.get("shape"), "action.shape", source)
    n = act.get("n")
    if discrete and (type(n) is not int or not 1 <= n <= MAX_DISCRETE_N):
        raise _fail(source, f"action.n must be an integer in [1, {MAX_DISCRETE_N}] for a discrete action, got {_short(n)}")
    if discrete and act_shape != ():
        raise _fail(source, f"action.shape must be [] for a discrete action (one index), got {list(act_shape)}")
    act_dtype = _dtype(act.get("dtype", "int64" if discrete else "float32"),
                       f"action.dtype (discrete={str(discrete).lower()})", source, ACT_DTYPES[discrete])
    low = _bound(act.get("low"), act_shape, -np.inf, "action.low", source)
    high = _bound(act.get("high"), act_shape, np.inf, "action.high", source)
    baked_in = data.get("baked_in", [])
    if not isinstance(baked_in, list) or not all(isinstance(b, str) for b in baked_in):
        raise _fail(source, f"baked_in must be a list of step names, got {_short(baked_in)}")
    if not discrete:
        _check_bounds(low, high, baked_in, source)
    precision = data.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise _fail(source, f"precision {_short(precision)} is not one of {list(PRECISIONS)}")
    return Contract(
        recurrent=parse_recurrent_section(data.get("recurrent"), source),
        obs_shape=obs_shape,
        obs_dtype=_dtype(obs.get("dtype", "float32"), "observation.dtype", source, OBS_DTYPES),
        act_shape=act_shape,
        act_dtype=act_dtype,
        discrete=discrete,
        n=n if discrete else None,
        act_low=None if discrete else low,
        act_high=None if discrete else high,
        raw=data,
        precision=precision,
    )


RECURRENT_KEYS = ("kind", "inputs", "outputs", "shape", "batch_axis", "dtype", "reset")
MAX_STATE_ELEMENTS = 1 << 20
"""Largest state tensor (layers x hidden) a contract may declare."""


def parse_recurrent_section(rec: Any, source: str) -> RecurrentSpec | None:
    """Validate the optional ``recurrent`` section (see :mod:`edgerl.export.contract`).

    Raises:
        BundleError: The section is malformed (names the key and what it must be).
    """
    if rec is None:
        return None
    if not isinstance(rec, dict) or sorted(rec) != sorted(RECURRENT_KEYS):
        raise _fail(source, f"recurrent must be an object with exactly {list(RECURRENT_KEYS)}, got "
                            f"{_short(sorted(rec) if isinstance(rec, dict) else rec)}")
    kind = rec["kind"]
    if not isinstance(kind, str) or kind not in RECURRENT_STATES:
        raise _fail(source, f"recurrent.kind is {_short(kind)}; expected one of {sorted(RECURRENT_STATES)}")
    ins, outs = state_io_names(kind)
    for key, want in (("inputs", ins), ("outputs", outs)):
        if rec[key] != list(want):
            raise _fail(source, f"recurrent.{key} is {_short(rec[key])}; a {kind} graph's state tensors are {list(want)}")
    shape = rec["shape"]
    if (not isinstance(shape, list) or len(shape) != 3 or not all(type(d) is int and d > 0 for d in shape)
            or shape[1] != 1 or shape[0] * shape[2] > MAX_STATE_ELEMENTS):
        raise _fail(source, f"recurrent.shape must be [layers, 1, hidden] (positive integers, batch 1, at most "
                            f"{MAX_STATE_ELEMENTS} entries), got {_short(shape)}")
    if type(rec["batch_axis"]) is not int or rec["batch_axis"] != 1:
        raise _fail(source, f"recurrent.batch_axis is {_short(rec['batch_axis'])}; state tensors are "
                            "[layers, batch, hidden] (batch_axis 1)")
    if rec["dtype"] != "float32":
        raise _fail(source, f"recurrent.dtype is {_short(rec['dtype'])}; the state is float32")
    if rec["reset"] not in RESET_RULES:
        raise _fail(source, f"recurrent.reset is {_short(rec['reset'])}; this runtime knows {list(RESET_RULES)}")
    return RecurrentSpec(kind=kind, inputs=ins, outputs=outs, shape=tuple(shape), reset=rec["reset"])


def _term_range(t: dict[str, Any], key: str, i: int, source: str, fail: Callable[[str, str], Exception]
                ) -> np.ndarray | None:
    v = t.get(key)
    if v is None:
        return None
    vals = v if isinstance(v, list) else [v]
    if (len(vals) not in (1, t["size"]) or not all(type(x) in (int, float) for x in vals)
            or not all(abs(x) <= MAX_ABS_BOUND for x in vals)):  # NaN and infinity fail too
        raise fail(source, f"io.observation.terms[{i}].{key} ({t['name']}) must be one finite number or {t['size']} "
                           f"of them, got {_short(v)}")
    return np.broadcast_to(np.asarray(vals, dtype=np.float64), (t["size"],))


def observation_ranges(terms: list[dict[str, Any]], source: str,
                       fail: Callable[[str, str], Exception] = _fail) -> ObservationRanges | None:
    """Flat low/high of the io terms' plausible ranges (None when no term has one), validated: one
    finite number or ``size`` of them per bound, low below high. The one definition of those rules:
    ``edgerl.interop.io`` calls it on an io.yaml with its own ``fail`` (a ConfigError)."""
    lows, highs, spans, start = [], [], [], 0
    for i, t in enumerate(terms):
        lo, hi = _term_range(t, "low", i, source, fail), _term_range(t, "high", i, source, fail)
        if lo is not None and hi is not None and not np.all(lo < hi):
            j = int(np.flatnonzero(~(lo < hi))[0])
            raise fail(source, f"io.observation.terms[{i}] ({t['name']}) low[{j}] = {lo[j]:g} is not below "
                                f"high[{j}] = {hi[j]:g}")
        lows.append(np.full(t["size"], -np.inf) if lo is None else lo)
        highs.append(np.full(t["size"], np.inf) if hi is None else hi)
        unit = t.get("unit")
        spans.append((t["name"], start, t["size"], unit if isinstance(unit, str) else None))
        start += t["size"]
    if all(np.isinf(lo).all() for lo in lows) and all(np.isinf(hi).all() for hi in highs):
        return None
    return ObservationRanges(low=np.concatenate(lows), high=np.concatenate(highs), terms=tuple(spans))


def parse_io_section(io: Any, obs_shape: tuple[int, ...], act_shape: tuple[int, ...],
                     source: str) -> ObservationRanges | None:
    """Validate the optional ``io`` section (``edgerl import --io``): observation terms in order
    (``name``, ``size``, ``unit``, ``scale`` already baked in, optional plausible range ``low``/
    ``high``: one number or ``size`` of them), action ``joint_names`` in order, ``control_rate_hz``.
    Sizes must add up to the observation and action shapes.

    Returns:
        The terms' observation ranges, flattened (None without any).

    Raises:
        BundleError: The section is malformed or disagrees with the shapes.
    """
    ranges = None
    if io is None:
        return None
    if not isinstance(io, dict) or set(io) - {"observation", "action", "control_rate_hz"}:
        raise _fail(source, "io must be an object with observation, action and/or control_rate_hz")
    terms = (io.get("observation") or {}).get("terms") if isinstance(io.get("observation"), dict) else None
    if io.get("observation") is not None:
        if not isinstance(terms, list) or not all(
                isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("size"), int)
                and not isinstance(t.get("size"), bool) and t["size"] > 0 for t in terms):
            raise _fail(source, "io.observation.terms must be a list of {name, size > 0, unit, scale, low, high}")
        total, need = sum(t["size"] for t in terms), int(np.prod(obs_shape, dtype=np.int64))
        if total != need:
            raise _fail(source, f"io.observation.terms sum to {total} entries but the observation has {need}")
        ranges = observation_ranges(terms, source)
    if io.get("action") is not None:
        names = io["action"].get("joint_names") if isinstance(io["action"], dict) else None
        need = int(np.prod(act_shape, dtype=np.int64))
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) != need:
            raise _fail(source, f"io.action.joint_names must name the {need} action elements in order")
    rate = io.get("control_rate_hz")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0):
        raise _fail(source, f"io.control_rate_hz must be a positive number, got {rate!r}")
    return ranges


def valid_episode_starts(starts: np.ndarray, n: int, contract: Contract) -> bool:
    """Whether ``starts`` can be a bundle reference's episode-start flags: bool ``[n]``, and the
    contract recurrent (a feed-forward policy has no state to reset)."""
    return contract.recurrent is not None and starts.dtype == np.bool_ and starts.shape == (n,)


def read_contract(path: str | os.PathLike) -> Contract:
    """Read and validate ``contract.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path} is missing; re-run edgerl deploy") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise BundleError(f"{path}: malformed JSON ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                          "re-run edgerl deploy") from None
    return parse_contract(data, source=str(path))

"""The I/O description (``--io io.yaml``): what the checkpoint of another library does not hold.

One format for every source::

    observation:
      terms:                      # in the order the network reads them; sizes sum to its input width
        - {name: base_lin_vel, size: 3, unit: m/s, scale: 2.0}
        - {name: joint_pos, size: 12, unit: rad, low: -3.2, high: 3.2}
    normalizer:                   # optional; statistics of a normaliser the file lacks
      mean: [...]
      var: [...]                  # or std: [...]
      eps: 1.0e-8
      clip: 10.0                  # .inf: no clipping
      formula: var                # var: (x-mean)/sqrt(var+eps); std: (x-mean)/(sqrt(var)+eps)
    action:                       # applied in this order: clip -> scale -> offset
      clip: 100.0                 # c (=> [-c, c]) | [low, high] | {low: [...], high: [...]}
      scale: 0.25                 # one number or one per action element
      offset: [0.1, 0.8, ...]     # e.g. default joint positions
      joint_names: [FL_hip, ...]  # the order of the action elements
    control_rate_hz: 50
    recurrent:                    # optional; only for --from onnx graphs that carry a state
      kind: lstm                  # lstm (two state tensors) | gru (one) | state (either; the default)
      state:                      # graph tensor pairs: each output is fed back as its input next step
        - {input: h_in, output: h_out}
        - {input: c_in, output: c_out}
      reset: zeros_at_episode_start   # the only rule the runtime implements

Observation ``scale`` (legged_gym's ``obs_scales``: the env multiplies before the network) and
the action chain are baked into the exported graph; names, units, joint order and the control
rate travel in ``contract.json`` (``io`` section). It is parsed here only.

A term's optional ``low``/``high`` (a number, or one per element of the term) is its plausible
range in the observation the robot passes to the runtime (the term's unit, before ``scale``): the
runtime's ``Policy.act`` raises ``ObservationError`` naming the term and element when an
observation leaves it (a swapped term, degrees for radians, a stale sensor at its rail), instead
of acting on it. Either side may be left out (unbounded).

``recurrent`` names the state of an ONNX graph with explicit memory (Isaac Lab's exporter writes
``obs, h_in[, c_in] -> actions, h_out[, c_out]``): ``edgerl import --from onnx`` renames the pairs
to the contract's ``h_in/h_out[, c_in/c_out]`` and writes its ``recurrent`` section, so the runtime
feeds each state output back and zeros the state at episode start. Checkpoints of the libraries
(rsl_rl, SB3's RecurrentPPO) hold their memory's layout themselves and take no ``recurrent`` here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgerl.errors import ConfigError
from edgerl.runtime.contract import observation_ranges


@dataclass(frozen=True)
class RecurrentIO:
    """The ``recurrent`` section: which graph tensors carry the state, and when it is reset."""

    kind: str
    """``lstm``, ``gru`` or ``state`` (a memory of another kind: only its tensors matter)."""
    inputs: tuple[str, ...]
    """Graph inputs of the state, in order."""
    outputs: tuple[str, ...]
    """Graph outputs of the next state, paired with :attr:`inputs`."""
    reset: str
    """``zeros_at_episode_start``."""


@dataclass
class IODescription:
    """A parsed ``io.yaml``."""

    terms: list[dict[str, Any]] = field(default_factory=list)
    """``{"name", "size", "unit", "scale", "low", "high"}`` per observation term, in order (``low``/
    ``high``: ``size`` numbers, or None when that side is unbounded)."""
    normalizer: dict[str, Any] | None = None
    """``{"mean", "var", "eps", "clip", "formula"}`` (arrays as float64 numpy) or None."""
    clip_low: list[float] | None = None
    clip_high: list[float] | None = None
    scale: list[float] | None = None
    offset: list[float] | None = None
    joint_names: list[str] | None = None
    control_rate_hz: float | None = None
    recurrent: RecurrentIO | None = None
    """The graph's state pairs and reset rule (``--from onnx`` only), or None."""

    def obs_scale(self) -> np.ndarray | None:
        """Per-element observation scale from the terms (None when every scale is 1)."""
        if not self.terms or all(t["scale"] == 1.0 for t in self.terms):
            return None
        return np.concatenate([np.full(t["size"], t["scale"], dtype=np.float64) for t in self.terms])

    def contract_section(self) -> dict[str, Any]:
        """The ``io`` section of ``contract.json`` (checked by edgerl.runtime.contract)."""
        section: dict[str, Any] = {}
        if self.terms:
            section["observation"] = {"terms": [{k: t[k] for k in TERM_KEYS if k in ("name", "size", "unit", "scale")
                                                 or t.get(k) is not None} for t in self.terms]}
        if self.joint_names is not None:
            section["action"] = {"joint_names": list(self.joint_names)}
        if self.control_rate_hz is not None:
            section["control_rate_hz"] = self.control_rate_hz
        return section


TERM_KEYS = ("name", "size", "unit", "scale", "low", "high")
"""Keys of an observation term."""


def _fail(source: str, msg: str) -> ConfigError:
    return ConfigError(f"{source}: {msg}")


def _numbers(v: Any, key: str, source: str) -> list[float]:
    vals = v if isinstance(v, list) else [v]
    try:
        out = [float(x) for x in vals]
    except (TypeError, ValueError):
        raise _fail(source, f"{key} must be a number or a list of numbers, got {v!r}") from None
    if not out or any(np.isnan(x) for x in out):
        raise _fail(source, f"{key} must hold numbers (no NaN), got {v!r}")
    return out


def _terms(obs: Any, source: str) -> list[dict[str, Any]]:
    if obs is None:
        return []
    if not isinstance(obs, dict) or not isinstance(obs.get("terms"), list) or set(obs) - {"terms"}:
        raise _fail(source, "observation must be {terms: [{name, size, unit, scale, low, high}, ...]}")
    terms = []
    for i, t in enumerate(obs["terms"]):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or set(t) - set(TERM_KEYS):
            raise _fail(source, f"observation.terms[{i}] must be {{name, size, unit, scale, low, high}}, got {t!r}")
        size = t.get("size", 1)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise _fail(source, f"observation.terms[{i}] ({t['name']}) size must be a positive integer, got {size!r}")
        scale = _numbers(t.get("scale", 1.0), f"observation.terms[{i}].scale", source)[0]
        if not (np.isfinite(scale) and scale > 0):
            raise _fail(source, f"observation.terms[{i}] ({t['name']}) scale must be finite and > 0, got {scale}")
        bounds = {k: None if t.get(k) is None else _numbers(t[k], f"observation.terms[{i}].{k} ({t['name']})", source)
                  for k in ("low", "high")}
        terms.append({"name": t["name"], "size": size, "unit": None if t.get("unit") is None else str(t["unit"]),
                      "scale": scale, **bounds})
    observation_ranges(terms, source, fail=_fail)  # the runtime's rules, checked before anything is written
    for t in terms:  # one number per element, as the contract stores them
        for k in ("low", "high"):
            if t[k] is not None and len(t[k]) == 1:
                t[k] = t[k] * t["size"]
    return terms


def _normalizer(v: Any, source: str) -> dict[str, Any] | None:
    if v is None:
        return None
    if not isinstance(v, dict) or "mean" not in v or ("var" in v) == ("std" in v):
        raise _fail(source, "normalizer needs mean and one of var or std")
    mean = np.asarray(_numbers(v["mean"], "normalizer.mean", source))
    var = (np.asarray(_numbers(v["var"], "normalizer.var", source)) if "var" in v
           else np.asarray(_numbers(v["std"], "normalizer.std", source)) ** 2)
    if mean.shape != var.shape or np.any(var < 0):
        raise _fail(source, "normalizer mean and var/std must have the same length, var >= 0")
    formula = v.get("formula", "var")
    if formula not in ("var", "std"):
        raise _fail(source, f"normalizer.formula must be var or std, got {formula!r}")
    return {"mean": mean, "var": var, "eps": _numbers(v.get("eps", 1e-8), "normalizer.eps", source)[0],
            "clip": _numbers(v.get("clip", float("inf")), "normalizer.clip", source)[0], "formula": formula}


def _clip(v: Any, source: str) -> tuple[list[float] | None, list[float] | None]:
    if v is None:
        return None, None
    if isinstance(v, dict):
        if set(v) != {"low", "high"}:
            raise _fail(source, "action.clip as a mapping needs exactly low and high")
        return _numbers(v["low"], "action.clip.low", source), _numbers(v["high"], "action.clip.high", source)
    if isinstance(v, list) and len(v) == 2 and not isinstance(v[0], list):
        return [float(v[0])], [float(v[1])]
    c = _numbers(v, "action.clip", source)
    return [-x for x in c], c


RECURRENT_IO_KINDS = {"lstm": (2,), "gru": (1,), "state": (1, 2)}
"""Kinds of ``recurrent.kind`` and how many state pairs each has."""


def _recurrent(v: Any, source: str) -> RecurrentIO | None:
    from edgerl.runtime.contract import RESET_RULES

    if v is None:
        return None
    form = "recurrent must be {kind: lstm|gru|state, state: [{input: h_in, output: h_out}, ...], reset: " \
           f"{RESET_RULES[0]}}}"
    if not isinstance(v, dict) or "state" not in v or set(v) - {"kind", "state", "reset"}:
        raise _fail(source, f"{form}, got {v!r}")
    kind = v.get("kind", "state")
    if kind not in RECURRENT_IO_KINDS:
        raise _fail(source, f"recurrent.kind is {kind!r}; expected one of {sorted(RECURRENT_IO_KINDS)}")
    pairs = v["state"]
    if (not isinstance(pairs, list) or not all(isinstance(p, dict) and set(p) == {"input", "output"}
                                               and all(isinstance(x, str) and x for x in p.values()) for p in pairs)):
        raise _fail(source, f"recurrent.state must be a list of {{input: NAME, output: NAME}}, got {pairs!r}")
    if len(pairs) not in RECURRENT_IO_KINDS[kind]:
        raise _fail(source, f"recurrent.state has {len(pairs)} pairs; a {kind} memory has "
                            f"{' or '.join(map(str, RECURRENT_IO_KINDS[kind]))} (h[, c])")
    names = [p["input"] for p in pairs] + [p["output"] for p in pairs]
    if len(set(names)) != len(names):
        raise _fail(source, f"recurrent.state names a tensor twice: {names}")
    reset = v.get("reset", RESET_RULES[0])
    if reset not in RESET_RULES:
        raise _fail(source, f"recurrent.reset is {reset!r}; the runtime implements only {list(RESET_RULES)} "
                            "(the state becomes zeros when an episode starts)")
    return RecurrentIO(kind=kind, inputs=tuple(p["input"] for p in pairs),
                       outputs=tuple(p["output"] for p in pairs), reset=reset)


def parse_io(data: Any, source: str = "io.yaml") -> IODescription:
    """Validate an I/O description mapping.

    Raises:
        ConfigError: Unknown key or bad value (names the key).
    """
    if not isinstance(data, dict):
        raise _fail(source, "must be a YAML mapping")
    unknown = sorted(set(data) - {"observation", "normalizer", "action", "control_rate_hz", "recurrent"})
    if unknown:
        raise _fail(source, f"unknown keys {unknown}; known: observation, normalizer, action, control_rate_hz, "
                            "recurrent")
    act = data.get("action") or {}
    if not isinstance(act, dict) or set(act) - {"clip", "scale", "offset", "joint_names"}:
        raise _fail(source, "action takes clip, scale, offset, joint_names")
    low, high = _clip(act.get("clip"), source)
    names = act.get("joint_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise _fail(source, "action.joint_names must be a list of strings")
    rate = data.get("control_rate_hz")
    if rate is not None:
        rate = _numbers(rate, "control_rate_hz", source)[0]
        if not (np.isfinite(rate) and rate > 0):
            raise _fail(source, f"control_rate_hz must be > 0, got {rate}")
    return IODescription(
        terms=_terms(data.get("observation"), source), normalizer=_normalizer(data.get("normalizer"), source),
        clip_low=low, clip_high=high,
        scale=None if act.get("scale") is None else _numbers(act["scale"], "action.scale", source),
        offset=None if act.get("offset") is None else _numbers(act["offset"], "action.offset", source),
        joint_names=names, control_rate_hz=rate, recurrent=_recurrent(data.get("recurrent"), source))


def read_io(path: str | os.PathLike) -> IODescription:
    """Read and validate an ``io.yaml`` file."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--io {path}: no such file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"--io {path}: malformed YAML ({str(e).splitlines()[0]})") from None
    return parse_io(data, source=str(path))


def check_widths(io: IODescription, obs_dim: int, act_dim: int, source: str) -> None:
    """The description agrees with the network's input and output widths (one-line error naming both)."""
    if io.terms:
        total = sum(t["size"] for t in io.terms)
        if total != obs_dim:
            raise _fail(source, f"observation terms sum to {total} entries but the network takes {obs_dim}")
    if io.normalizer is not None and io.normalizer["mean"].size != obs_dim:
        raise _fail(source, f"normalizer has {io.normalizer['mean'].size} entries but the network takes {obs_dim}")
    for key, vals in (("action.clip", io.clip_low), ("action.scale", io.scale), ("action.offset", io.offset),
                      ("action.joint_names", io.joint_names)):
        if vals is not None and len(vals) not in ((1, act_dim) if key != "action.joint_names" else (act_dim,)):
            raise _fail(source, f"{key} has {len(vals)} entries but the network outputs {act_dim} actions")

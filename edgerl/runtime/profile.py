"""Target profiles: what hardware a bundle runs on and what it must achieve there.

A profile is data (``profiles/targets/NAME.yaml``); this module is its schema. Validation is
strict: an unknown key or a bad value raises :class:`ProfileError` naming the key and the allowed
values. Optional keys have the documented defaults below; a bad value is never replaced by one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ProfileError

FAMILIES = ("x86", "desktop-gpu", "jetson", "native")
BACKEND_NAMES = ("trt", "ort-cuda", "ort-cpu", "c")
PRECISIONS = ("fp32", "fp16", "int8")
ALIASES = {"jetson": "jetson-orin-nano", "x86": "x86-cpu", "cpu": "x86-cpu", "gpu": "desktop-gpu"}
"""Short names accepted by :func:`load_profile`."""

_VERSION_RE = re.compile(r"^\d+(\.\d+){0,2}$")


@dataclass(frozen=True)
class TargetProfile:
    """One deployment target. Field docstrings say what each value controls."""

    name: str
    """Profile name; equals the YAML file stem (``jetson-orin-nano``)."""
    family: str
    """Hardware family, one of ``x86``, ``desktop-gpu``, ``jetson``, ``native`` (C only: a
    microcontroller or a C/C++ control loop); picks ``deploy/<family>/``."""
    backends: tuple[str, ...]
    """Backends to try, best first (subset of ``trt``, ``ort-cuda``, ``ort-cpu``); the first
    available one is used, the others are logged with the reason they were skipped."""
    precision: str
    """``fp32``, ``fp16`` or ``int8`` (what ``edgerl deploy`` exports unless ``--precision`` says
    otherwise). int8 is a QDQ graph calibrated on real observations; fp16 a float16-weight graph
    for TensorRT >= 11 (strongly typed), the float32 graph plus ``BuilderFlag.FP16`` below 11."""
    threads: int
    """ONNX Runtime intra-op threads. 1 is fastest for batch-1 MLPs and leaves cores to the robot."""
    control_rate_hz: float
    """Rate of the control loop (ticks per second)."""
    latency_budget_us: float
    """Budget for one ``Policy.act`` call, in microseconds; slower calls count as deadline misses.
    Must not exceed the control period."""
    description: str = ""
    """One line for humans: the board, the power mode, what the profile was tuned for."""
    trt_version: str | None = None
    """Expected TensorRT ``major[.minor]`` as a quoted string ("11", "10.3", "8.5"); required
    when ``trt`` is a backend. A different installed version is logged as a warning."""
    trt_workspace_mb: int = 256
    """TensorRT builder workspace limit (MiB); Jetsons share RAM with the CPU, keep it small."""
    max_batch: int = 16
    """Largest batch of the TensorRT optimisation profile (min 1, opt 1); larger batches are split."""
    jetpack: str | None = None
    """JetPack release ("6.2", "5.1"); required for the ``jetson`` family, null elsewhere."""
    cuda_version: str | None = None
    """CUDA ``major.minor`` of the device ("12.6"); picks the cuda-python version at install."""
    gpu_sm: str | None = None
    """Expected GPU compute capability ("8.7" for Orin); a mismatch is logged when building."""
    power_mode: str | None = None
    """Jetson ``nvpmodel`` mode name as printed by ``nvpmodel -q`` ("MAXN"); latency figures are
    only comparable within one power mode. Jetson only."""
    jetson_clocks: bool | None = None
    """Whether ``jetson_clocks`` (fixed max clocks) is expected on while the policy runs. Jetson only."""
    parity_atol: float = 1e-5
    """Absolute tolerance of the reference-action check for an fp32 profile."""
    parity_rtol: float = 1e-5
    """Relative tolerance of the reference-action check (added to the absolute one)."""
    parity_atol_fp16: float = 1e-2
    """Absolute tolerance of the reference-action check when ``precision`` is fp16."""
    parity_discrete_mismatch: float = 0.0
    """Largest fraction of reference observations whose discrete action may differ (fp16 ties)."""
    parity_p99_fp16: float = 5e-3
    """Largest p99 of |a_fp16 - a_fp32| (action units / max(1, half range)) at export."""
    parity_atol_int8: float = 0.15
    """Largest |a_int8 - a_fp32| (action units / max(1, half range)) at export and reference check."""
    parity_p99_int8: float = 0.05
    """Largest p99 of |a_int8 - a_fp32| at export (calibration and held-out observations)."""
    parity_discrete_mismatch_int8: float = 0.01
    """Largest fraction of observations whose int8 discrete action may differ from fp32 (>= 99% agree)."""
    round_to: int = 1
    """Width multiple the hardware likes (8: AVX-512 CPUs, 16/32: Tensor Cores): what to pass as
    ``edgerl train --round-to`` for this target (the conv recipes default to 8). 1: no rounding."""
    warmup_runs: int = 50
    """Calls made after loading and before timing starts (first calls allocate and tune)."""
    cpu_affinity: tuple[int, ...] | None = None
    """CPU cores the control process is pinned to (``loop.apply_realtime``); null: no pinning."""
    rt_priority: int | None = None
    """SCHED_FIFO priority 1-99 for the control process (``loop.apply_realtime``); null: normal."""
    flash_budget_kb: float | None = None
    """Flash (text + rodata + data) the C policy may take, in KiB, checked at deploy; null: unchecked."""
    ram_budget_kb: float | None = None
    """RAM (data + bss + the ``edgerl_scratch`` struct) the C policy may take, in KiB; null: unchecked."""
    c_cross: tuple[str, ...] | None = None
    """Cross compiler and flags that size the C policy for the budgets (``[arm-none-eabi-gcc,
    -mcpu=cortex-m4, ...]``); where absent, the sizes are estimated from the weight count."""

    @property
    def period_us(self) -> float:
        """Control period in microseconds."""
        return 1e6 / self.control_rate_hz

    @property
    def effective_atol(self) -> float:
        """Tolerance used by the reference check for this profile's precision."""
        return {"fp16": self.parity_atol_fp16, "int8": self.parity_atol_int8}.get(self.precision, self.parity_atol)

    @property
    def effective_discrete_mismatch(self) -> float:
        """Fraction of discrete reference actions allowed to differ at this profile's precision."""
        if self.precision == "int8":
            return max(self.parity_discrete_mismatch, self.parity_discrete_mismatch_int8)
        return self.parity_discrete_mismatch

    def parity_for(self, precision: str) -> dict[str, float]:
        """Export bars for ``precision``: ``max_abs``, ``p99_abs`` (scaled action units) and the
        discrete ``agreement`` (see :class:`edgerl.export.precision_checks.PrecisionThresholds`)."""
        if precision == "int8":
            return {"max_abs": self.parity_atol_int8, "p99_abs": self.parity_p99_int8,
                    "agreement": 1.0 - max(self.parity_discrete_mismatch, self.parity_discrete_mismatch_int8)}
        if precision == "fp16":
            return {"max_abs": self.parity_atol_fp16, "p99_abs": self.parity_p99_fp16,
                    "agreement": 1.0 - self.parity_discrete_mismatch}
        return {"max_abs": self.parity_atol, "p99_abs": self.parity_atol, "agreement": 1.0 - self.parity_discrete_mismatch}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict that :func:`validate_profile` accepts back unchanged."""
        d = dataclasses.asdict(self)
        d["backends"] = list(self.backends)
        if self.c_cross is not None:
            d["c_cross"] = list(self.c_cross)
        if self.cpu_affinity is not None:
            d["cpu_affinity"] = list(self.cpu_affinity)
        return d


# --- value checkers: each returns the normalised value or raises ValueError(allowed values) ---

def _enum(allowed: tuple[str, ...]) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if not isinstance(v, str) or v not in allowed:
            raise ValueError(f"one of {list(allowed)}")
        return v
    return check


def _int(lo: int, hi: int | None = None) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            raise ValueError(f"an integer >= {lo}" + (f" and <= {hi}" if hi is not None else ""))
        return v
    return check


def _pos_float(allow_zero: bool = False) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and v != float("inf")
        if not ok or (v < 0 if allow_zero else v <= 0):
            raise ValueError("a finite number " + (">= 0" if allow_zero else "> 0"))
        return float(v)
    return check


def _fraction(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise ValueError("a number between 0 and 1")
    return float(v)


def _version(v: Any) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise ValueError(f'a quoted string such as "{v}" (YAML reads unquoted 10.10 as the number 10.1)')
    if not isinstance(v, str) or not _VERSION_RE.match(v):
        raise ValueError('a version string "major[.minor[.patch]]" such as "10.3"')
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("a string")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


def _backends(v: Any) -> tuple[str, ...]:
    allowed = f"a non-empty list of distinct names from {list(BACKEND_NAMES)}, best first"
    if not isinstance(v, (list, tuple)) or not v:
        raise ValueError(allowed)
    if any(b not in BACKEND_NAMES for b in v) or len(set(v)) != len(v):
        raise ValueError(allowed)
    return tuple(v)


def _cpus(v: Any) -> tuple[int, ...]:
    ok = isinstance(v, (list, tuple)) and v and all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in v)
    if not ok or len(set(v)) != len(v):
        raise ValueError("a non-empty list of distinct CPU indices (integers >= 0), or null")
    return tuple(v)


def _strings(v: Any) -> tuple[str, ...]:
    if not isinstance(v, (list, tuple)) or not v or not all(isinstance(x, str) and x for x in v):
        raise ValueError("a non-empty list of strings (a command and its flags), or null")
    return tuple(v)


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def wrapped(v: Any) -> Any:
        return None if v is None else check(v)
    return wrapped


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "name": _str,
    "family": _enum(FAMILIES),
    "backends": _backends,
    "precision": _enum(PRECISIONS),
    "threads": _int(1, 256),
    "control_rate_hz": _pos_float(),
    "latency_budget_us": _pos_float(),
    "description": _str,
    "trt_version": _optional(_version),
    "trt_workspace_mb": _int(1),
    "max_batch": _int(1),
    "jetpack": _optional(_version),
    "cuda_version": _optional(_version),
    "gpu_sm": _optional(_version),
    "power_mode": _optional(_str),
    "jetson_clocks": _optional(_bool),
    "parity_atol": _pos_float(allow_zero=True),
    "parity_rtol": _pos_float(allow_zero=True),
    "parity_atol_fp16": _pos_float(allow_zero=True),
    "parity_discrete_mismatch": _fraction,
    "parity_p99_fp16": _pos_float(allow_zero=True),
    "parity_atol_int8": _pos_float(allow_zero=True),
    "parity_p99_int8": _pos_float(allow_zero=True),
    "parity_discrete_mismatch_int8": _fraction,
    "round_to": _int(1, 256),
    "warmup_runs": _int(0),
    "cpu_affinity": _optional(_cpus),
    "rt_priority": _optional(_int(1, 99)),
    "flash_budget_kb": _optional(_pos_float()),
    "ram_budget_kb": _optional(_pos_float()),
    "c_cross": _optional(_strings),
}
_REQUIRED = ("name", "family", "backends", "precision", "threads", "control_rate_hz", "latency_budget_us")


def validate_profile(data: Mapping[str, Any], source: str = "profile") -> TargetProfile:
    """Check a profile mapping and return it typed.

    Args:
        data: Parsed YAML/JSON mapping.
        source: File or description named in error messages.

    Raises:
        ProfileError: Unknown or missing key, bad value, or inconsistent combination.
    """
    if not isinstance(data, Mapping):
        raise ProfileError(f"{source}: a profile must be a mapping of keys to values, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_CHECKS))
    if unknown:
        raise ProfileError(
            f"{source}: unknown key {unknown[0]!r}; allowed keys are {sorted(_CHECKS)} (check the spelling)"
        )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ProfileError(f"{source}: missing required key {missing[0]!r}; required keys are {list(_REQUIRED)}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        try:
            values[key] = _CHECKS[key](value)
        except ValueError as e:
            raise ProfileError(f"{source}: bad value {value!r} for {key!r}: expected {e}") from None
    profile = TargetProfile(**values)
    _check_consistency(profile, source)
    return profile


def _check_consistency(p: TargetProfile, source: str) -> None:
    def fail(msg: str) -> None:
        raise ProfileError(f"{source}: {msg}")

    if p.family == "x86" and set(p.backends) - {"ort-cpu", "c"}:
        fail(f"family 'x86' is CPU-only, so 'backends' must be from ['c', 'ort-cpu'], got {list(p.backends)}; "
             "use family 'desktop-gpu' for a machine with an NVIDIA GPU")
    if p.family == "native" and p.backends != ("c",):
        fail(f"family 'native' runs the C policy only, so 'backends' must be ['c'], got {list(p.backends)}")
    budgets = p.flash_budget_kb is not None or p.ram_budget_kb is not None or p.c_cross is not None
    if budgets and "c" not in p.backends:
        fail("'flash_budget_kb', 'ram_budget_kb' and 'c_cross' size the C policy: add 'c' to 'backends' or drop them")
    if "trt" in p.backends and p.trt_version is None:
        fail("'trt' is in 'backends' but 'trt_version' is not set; give the expected TensorRT version, e.g. \"10.3\"")
    if p.family == "jetson":
        if p.jetpack is None:
            fail("family 'jetson' needs 'jetpack' (e.g. \"6.2\"); TensorRT and CUDA versions follow from it")
    else:
        for key in ("jetpack", "power_mode", "jetson_clocks"):
            if getattr(p, key) is not None:
                fail(f"{key!r} applies to family 'jetson' only; set it to null for family {p.family!r}")
    if p.latency_budget_us > p.period_us:
        fail(f"'latency_budget_us' {p.latency_budget_us:g} exceeds the control period "
             f"{p.period_us:g} us at control_rate_hz {p.control_rate_hz:g}; lower the budget or the rate")


def default_profiles_dir() -> Path:
    """``profiles/targets`` shipped with edgerl (checkout or wheel; may not exist in a bundle)."""
    env = os.environ.get("EDGERL_PROFILES_DIR")
    if env:
        return Path(env)
    from .resources import shipped_dir

    return shipped_dir("profiles") / "targets"


def load_profile(name_or_path: str | os.PathLike, profiles_dir: str | os.PathLike | None = None) -> TargetProfile:
    """Load a target profile by name (``jetson-agx-orin``, alias ``jetson``) or by file path.

    Args:
        name_or_path: Profile name, alias, or path to a ``.yaml``/``.yml``/``.json`` file.
        profiles_dir: Folder of ``NAME.yaml`` files; default ``profiles/targets`` of the checkout
            (or ``$EDGERL_PROFILES_DIR``).

    Raises:
        ProfileError: Unknown name, unreadable or invalid file.
    """
    text = os.fspath(name_or_path)
    path = Path(text)
    if not (path.suffix in (".yaml", ".yml", ".json") or path.is_file()):
        name = ALIASES.get(text, text)
        folder = Path(profiles_dir) if profiles_dir is not None else default_profiles_dir()
        path = folder / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
            raise ProfileError(
                f"unknown target profile {text!r}: no {path}; known profiles: {known or 'none'}"
                f", aliases: {sorted(ALIASES)}; or pass a path to a profile YAML file"
            )
    if not path.is_file():
        raise ProfileError(f"profile file {path} does not exist")
    if path.suffix == ".json":
        return profile_from_json(path)
    import yaml  # only the training side needs PyYAML; a bundle carries profile.json

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ProfileError(f"{path}: not valid YAML ({e}); fix the file") from None
    if isinstance(data, dict):
        if "name" not in data:
            data = {"name": path.stem, **data}
        elif data["name"] != path.stem:
            raise ProfileError(
                f"{path}: 'name' is {data['name']!r} but the file is {path.name}; make them equal"
            )
    return validate_profile(data, source=str(path))


def profile_from_json(path: str | os.PathLike) -> TargetProfile:
    """Read a resolved profile written into a bundle (``profile.json``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ProfileError(f"{path}: malformed JSON ({e})") from None
    return validate_profile(data, source=str(path))


def profile_to_json(profile: TargetProfile) -> str:
    """The JSON text stored as ``profile.json`` in a bundle."""
    return json.dumps(profile.to_dict(), indent=2, sort_keys=True) + "\n"


def resolve_profile(profile: TargetProfile | Mapping[str, Any] | str | os.PathLike) -> TargetProfile:
    """Accept a profile object, a mapping, or a name/path, and return a validated profile."""
    if isinstance(profile, TargetProfile):
        return profile
    if isinstance(profile, Mapping):
        return validate_profile(profile)
    return load_profile(profile)

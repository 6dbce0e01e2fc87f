"""Typed configuration: dataclasses whose fields document themselves, the recipe files that set
them per environment, and the generation of CLI flags from them.

Resolution order (later wins): dataclass defaults < recipe ``default:`` < recipe entry for the
env id < flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import reprlib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edgerl.errors import ConfigError

REPO_PROFILES = Path(__file__).resolve().parent.parent / "profiles"


def doc(help_text: str, default: Any = dataclasses.MISSING, *, min: float | None = None,  # noqa: A002
        max: float | None = None, min_len: int | None = None, **kw: Any) -> Any:  # noqa: A002
    """A dataclass field with a one-line help text (shown by ``edgerl train --help``) and its
    valid range: ``min``/``max`` bound a number or each element of a list, ``min_len`` a list's
    length. :func:`from_sources` enforces them (recipes, flags and resumed configs alike)."""
    meta = {"help": help_text, **{k: v for k, v in (("min", min), ("max", max), ("min_len", min_len)) if v is not None}}
    if isinstance(default, (list, dict)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


def valid_range(meta: Any) -> str:
    """The valid range a field's metadata declares, in words ('' when any value goes)."""
    lo, hi, n = (meta.get(k) for k in ("min", "max", "min_len"))
    lo, hi = (v if v is None or isinstance(v, int) else f"{v:g}" for v in (lo, hi))
    each = f"in [{lo}, {hi}]" if lo is not None and hi is not None else (
        f">= {lo}" if lo is not None else (f"<= {hi}" if hi is not None else ""))
    if n is not None:
        return f"at least {n} value(s)" + (f", each {each}" if each else "")
    return each


def check_field(cls: type, f: dataclasses.Field, value: Any) -> None:
    """``value`` lies in the field's declared range and floats are finite; else a one-line
    :class:`ConfigError` naming the flag and the valid range."""
    meta = f.metadata
    flag = "--" + f.name.replace("_", "-")
    items = value if isinstance(value, list) else [value]
    ok = True
    if isinstance(value, list) and meta.get("min_len") is not None and len(value) < meta["min_len"]:
        ok = False
    for v in items:
        if isinstance(v, float) and not math.isfinite(v):
            ok = False
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if meta.get("min") is not None and not v >= meta["min"]:
                ok = False
            if meta.get("max") is not None and not v <= meta["max"]:
                ok = False
    if not ok:
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        rng = valid_range(meta) or "a finite number"
        raise ConfigError(f"{flag} must be {rng}, got {_short(shown)!s} ({cls.__name__}.{f.name})")


def _short(value: Any, limit: int = 80) -> str:
    """A bounded repr for error messages (a recipe value may be huge)."""
    try:
        r = reprlib.Repr()
        r.maxlevel, r.maxlist, r.maxdict, r.maxstring, r.maxother = 2, 8, 8, limit, limit
        text = r.repr(value)
    except ValueError:  # an int too long to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass
class RunConfig:
    """What to train, where, and how often to evaluate and checkpoint."""

    env: str = doc("Gymnasium env id, e.g. Hopper-v5, HalfCheetah-v5, ALE/Pong-v5.", "Hopper-v5")
    algo: str = doc("Algorithm: sac, ppo or dqn.", "sac")
    total_steps: int = doc("Environment steps to train for.", 100_000, min=1)
    seed: int = doc("Seed of envs, networks and sampling.", 1, min=0, max=2**32 - 1)
    out: str = doc("Run folder (ckpt.pt, replay buffer, metrics.csv).", "runs/latest")
    threads: int = doc("torch intra-op threads (1 is fastest per process on small nets).", 1, min=1, max=1024)
    eval_every: int = doc("Evaluate the deterministic policy every N env steps (0: only at the end).", 5_000, min=0)
    eval_episodes: int = doc("Episodes per evaluation.", 5, min=1)
    checkpoint_every: int = doc("Write ckpt.pt and the replay buffer every N env steps (0: only at the end).", 10_000, min=0)
    progress: bool = doc("Show a progress bar.", True)
    device: str = doc("Where to train: auto (CUDA when available), cpu, cuda or cuda:N. Checkpoints are "
                      "saved on the CPU, so a run resumes, compacts and exports on any machine.", "auto")


@dataclass
class PruneConfig:
    """Pruning during training (shared by every algorithm)."""

    prune: str = doc("Pruning method: none, gradual (group-structured), unstructured (masked), naive (per-layer "
                     "filters, masked: ignores coupling), gates.", "none")
    final_ratio: float = doc("Final fraction of channels removed from each prunable group.", 0.8)
    prune_start: float = doc("Fraction of training at which pruning starts.", 0.2, min=0, max=1)
    prune_end: float = doc("Fraction of training at which the final ratio is reached.", 0.8, min=0, max=1)
    prune_every: int = doc("Prune every N updates between start and end.", 1000, min=1)
    schedule: str = doc("Ratio schedule: cubic, linear or oneshot.", "cubic")
    importance: str = doc("Group importance: l1, l2 or taylor.", "l1")
    round_to: int = doc("Round remaining widths to a multiple of this (hardware-friendly); 1 = off.", 1, min=1)
    prune_nets: str = doc("Networks gradual/unstructured/naive pruning shrinks: actor (the deployed ones; critics and "
                          "targets keep their width, the learner's capacity) or all. Measured on HalfCheetah-v5, "
                          "30k steps, 512x512 at 0.8: return 2914 actor, 900 all (REFERENCE.md section 8); what all buys "
                          "is training time: 102-wide critics update 4.7x faster than 512-wide ones beside a 102x102 "
                          "actor (docs/benchmarks/critic_width_speed.json).", "actor")
    gate_lambda: float = doc("Gates: weight of the expected-parameter-count regulariser.", 1e-4, min=0)
    gate_cost: str = doc("Gates: cost counted by the regulariser: train (all nets) or deploy (state block + actor).", "deploy")
    gate_target: float = doc("Gates: fraction of the counted parameters to remove by --prune-end (e.g. 0.75), "
                             "along the cubic schedule; > 0 steers gate_lambda (then only a starting value).", 0.0, min=0, max=1)
    gate_actor_grad: bool = doc("Gates with --ofenet: the actor's loss also trains the gates of OFENet's state block "
                                "(the units the deployed actor reads; OFENet's weights still learn only its prediction "
                                "loss), once per update as that loss does. Being on the Q scale, the actor's loss then "
                                "decides those gates. false: only the prediction loss judges them.", True)


def _strip_optional(tp: Any) -> Any:
    """``X | None`` -> ``X``."""
    args = typing.get_args(tp)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def _parse_list(text: str, elem: type) -> list:
    try:
        return [elem(x) for x in text.replace(" ", "").split(",") if x != ""]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {elem.__name__}, got {text!r}") from e


def _parse_bool(text: str) -> bool:
    low = str(text).lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, title: str | None = None) -> None:
    """Add one ``--flag`` per field of ``cls``; defaults are left as None so that only flags the
    user actually gave override the recipe."""
    group = parser.add_argument_group(title or cls.__name__, (cls.__doc__ or "").strip())
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        tp = _strip_optional(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        rng = valid_range(f.metadata)
        help_text = f"{f.metadata.get('help', '')} (default: {default}{'; ' + rng if rng else ''})".replace("%", "%%")
        if typing.get_origin(tp) is list:
            elem = typing.get_args(tp)[0]
            group.add_argument(flag, type=lambda s, e=elem: _parse_list(s, e), default=None, help=help_text, metavar="A,B,..")
        elif tp is bool:  # `--flag`, `--flag true` and `--flag false` all work
            group.add_argument(flag, type=_parse_bool, nargs="?", const=True, default=None, help=help_text,
                               metavar="BOOL")
        else:
            group.add_argument(flag, type=tp, default=None, help=help_text)


def from_sources(cls: type, *sources: dict[str, Any]) -> Any:
    """Instantiate ``cls`` from layered dicts (later wins), rejecting unknown keys and bad types."""
    known = {f.name: f for f in fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for src in sources:
        for key, val in src.items():
            if val is None or key not in known:
                continue
            values[key] = _coerce(cls, key, val, _strip_optional(hints[key]))
    for key, val in values.items():
        check_field(cls, known[key], val)
    return cls(**values)


def _coerce(cls: type, key: str, val: Any, tp: Any) -> Any:
    try:
        if typing.get_origin(tp) is list:
            elem = typing.get_args(tp)[0]
            if isinstance(val, str):
                return _parse_list(val, elem)
            return [elem(v) for v in val]
        if tp is bool:
            return _parse_bool(val) if not isinstance(val, bool) else val
        if tp is float and isinstance(val, (int, float)):
            return float(val)
        if tp is int and isinstance(val, float) and val.is_integer():
            return int(val)
        if isinstance(tp, type) and not isinstance(val, tp):
            return tp(val)
        return val
    except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
        raise ConfigError(f"{cls.__name__}.{key}: cannot use {_short(val)} ({_short(str(e), 120)})") from None


MAX_RECIPE_BYTES = 1 << 20


def _recipe_loader() -> type:
    import yaml

    class RecipeLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` without anchors and aliases: a recipe is a few settings, and aliases
        are how a 1 KB file expands to gigabytes (billion laughs)."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"aliases (*name) are not allowed in recipes (line {mark.line + 1}); "
                                     "write the values out")
            return super().compose_node(parent, index)

    return RecipeLoader


def load_recipe(path: str | Path, env_id: str, allowed: set[str]) -> dict[str, Any]:
    """Merge a recipe file's ``default:`` entry with its entry for ``env_id``.

    Unknown keys are an error (a typo must not silently fall back to a default).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {path} does not exist; pass --recipe with a YAML file path")
    if path.stat().st_size > MAX_RECIPE_BYTES:
        raise ConfigError(f"recipe {path} is {path.stat().st_size:,} bytes; a recipe is a small YAML file "
                          f"(at most {MAX_RECIPE_BYTES:,} bytes)")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"recipe {path} is not UTF-8 text (byte {e.start}); save it as UTF-8 YAML") from None
    try:
        data = yaml.load(text, Loader=_recipe_loader()) or {}
    except (yaml.YAMLError, ValueError, RecursionError) as e:  # ValueError: e.g. an int of 5000 digits
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        where = getattr(e, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        raise ConfigError(f"recipe {path} is not a valid recipe{at}: {first[:160]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must map env ids (and 'default') to settings")
    merged: dict[str, Any] = {}
    for entry in ("default", env_id):
        part = data.get(entry) or {}
        if not isinstance(part, dict):
            raise ConfigError(f"recipe {path}: entry {entry!r} must be a mapping of settings")
        unknown = set(part) - allowed
        if unknown:
            raise ConfigError(
                f"recipe {path}: entry {entry!r} has unknown keys {_short(sorted(map(str, unknown)))}; "
                f"known keys: {sorted(allowed)}"
            )
        merged.update(part)
    return merged


def default_recipe(algo: str) -> Path:
    """The recipe file shipped for ``algo`` (profiles/recipes/<algo>.yaml, checkout or wheel)."""
    from edgerl.runtime.resources import shipped_dir

    return shipped_dir("profiles") / "recipes" / f"{algo}.yaml"


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict form of a config dataclass (what checkpoints store)."""
    return dataclasses.asdict(cfg)

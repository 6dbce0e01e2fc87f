"""Typed configuration: dataclasses whose fields document themselves, the recipe files that set
them per environment, and the generation of CLI flags from them.

Resolution order (later wins): dataclass defaults < recipe ``default:`` < recipe entry for the
env id < flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edgerl.errors import ConfigError

REPO_PROFILES = Path(__file__).resolve().parent.parent / "profiles"


def doc(help_text: str, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A dataclass field with a one-line help text (shown by ``edgerl train --help``)."""
    if isinstance(default, (list, dict)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata={"help": help_text}, **kw)
    return field(default=default, metadata={"help": help_text}, **kw)


@dataclass
class RunConfig:
    """What to train, where, and how often to evaluate and checkpoint."""

    env: str = doc("Gymnasium env id, e.g. Hopper-v5, HalfCheetah-v5, ALE/Pong-v5.", "Hopper-v5")
    algo: str = doc("Algorithm: sac, ppo or dqn.", "sac")
    total_steps: int = doc("Environment steps to train for.", 100_000)
    seed: int = doc("Seed of envs, networks and sampling.", 1)
    out: str = doc("Run folder (ckpt.pt, replay buffer, metrics.csv).", "runs/latest")
    threads: int = doc("torch intra-op threads (1 is fastest per process on small nets).", 1)
    eval_every: int = doc("Evaluate the deterministic policy every N env steps (0: only at the end).", 5_000)
    eval_episodes: int = doc("Episodes per evaluation.", 5)
    checkpoint_every: int = doc("Write ckpt.pt and the replay buffer every N env steps (0: only at the end).", 10_000)
    progress: bool = doc("Show a progress bar.", True)


@dataclass
class PruneConfig:
    """Pruning during training (shared by every algorithm)."""

    prune: str = doc("Pruning method: none, gradual (group-structured), unstructured (masked), naive (per-layer "
                     "filters, masked: ignores coupling), gates.", "none")
    final_ratio: float = doc("Final fraction of channels removed from each prunable group.", 0.8)
    prune_start: float = doc("Fraction of training at which pruning starts.", 0.2)
    prune_end: float = doc("Fraction of training at which the final ratio is reached.", 0.8)
    prune_every: int = doc("Prune every N updates between start and end.", 1000)
    schedule: str = doc("Ratio schedule: cubic, linear or oneshot.", "cubic")
    importance: str = doc("Group importance: l1, l2 or taylor.", "l1")
    round_to: int = doc("Round remaining widths to a multiple of this (hardware-friendly); 1 = off.", 1)
    prune_nets: str = doc("Networks gradual/unstructured/naive pruning shrinks: actor (the deployed ones; critics and "
                          "targets keep their width, the learner's capacity) or all. Measured on HalfCheetah-v5, "
                          "30k steps, 512x512 at 0.8: actor 2914, all 900 (docs/benchmarks/compression.md).", "actor")
    gate_lambda: float = doc("Gates: weight of the expected-parameter-count regulariser.", 1e-4)
    gate_cost: str = doc("Gates: cost counted by the regulariser: train (all nets) or deploy (state block + actor).", "deploy")
    gate_target: float = doc("Gates: fraction of the counted parameters to remove by --prune-end (e.g. 0.75), "
                             "along the cubic schedule; > 0 steers gate_lambda (then only a starting value).", 0.0)


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
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
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
        raise ConfigError(f"{cls.__name__}.{key}: cannot use {val!r} ({e})") from e


def load_recipe(path: str | Path, env_id: str, allowed: set[str]) -> dict[str, Any]:
    """Merge a recipe file's ``default:`` entry with its entry for ``env_id``.

    Unknown keys are an error (a typo must not silently fall back to a default).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe {path} does not exist; pass --recipe with a YAML file path")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {path} is not valid YAML: {e}") from e
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
                f"recipe {path}: entry {entry!r} has unknown keys {sorted(unknown)}; known keys: {sorted(allowed)}"
            )
        merged.update(part)
    return merged


def default_recipe(algo: str) -> Path:
    """The recipe file shipped for ``algo`` (profiles/recipes/<algo>.yaml)."""
    return REPO_PROFILES / "recipes" / f"{algo}.yaml"


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict form of a config dataclass (what checkpoints store)."""
    return dataclasses.asdict(cfg)

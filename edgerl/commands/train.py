"""``edgerl train``: resolve the config (defaults < recipe < flags), then run the algorithm."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Any

from edgerl.config import (
    PruneConfig,
    RunConfig,
    add_dataclass_args,
    default_recipe,
    from_sources,
    load_recipe,
    to_dict,
)
from edgerl.errors import CheckpointError, ConfigError

ALGOS = ("sac", "ppo", "dqn")


def algo_config_class(algo: str) -> type:
    """The hyperparameter dataclass of ``algo``."""
    if algo == "sac":
        from edgerl.algos.sac import SACConfig

        return SACConfig
    if algo == "ppo":
        from edgerl.algos.ppo import PPOConfig

        return PPOConfig
    if algo == "dqn":
        from edgerl.algos.dqn import DQNConfig

        return DQNConfig
    raise ConfigError(f"unknown --algo {algo!r}; choose one of {', '.join(ALGOS)}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run in DIR from its ckpt.pt (only --total-steps/--progress/--device may change; other "
                        "flags that disagree with the run are refused)")
    p.add_argument("--recipe", metavar="YAML", default=None,
                   help="per-env hyperparameter file (default: profiles/recipes/<algo>.yaml)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out folder that holds a run: deletes its ckpt.pt, metrics.csv and "
                        "replay-*.npz first (other files stay); without it such a folder is refused")
    add_dataclass_args(p, RunConfig, "run")
    add_dataclass_args(p, PruneConfig, "pruning")
    add_algo_arguments(p)


def add_algo_arguments(p: argparse.ArgumentParser) -> None:
    """One flag per hyperparameter name across the algorithms' configs.

    A name shared by several algorithms (``--gamma``, ``--hidden``, ``--batch-size``, ...) has one
    meaning and one flag, listed in the group of the first algorithm that has it, with each
    algorithm's default. Boolean flags of the image algorithms may be given bare (``--impoola``).
    """
    from edgerl.algos.atari import ImageEnvConfig

    groups = [("sac", algo_config_class("sac")), ("image envs (ppo, dqn)", ImageEnvConfig),
              ("ppo", algo_config_class("ppo")), ("dqn", algo_config_class("dqn"))]
    defaults: dict[str, dict[str, typing.Any]] = {}
    helps: dict[str, dict[str, list[str]]] = {}
    for algo in ALGOS:
        for f in dataclasses.fields(algo_config_class(algo)):
            defaults.setdefault(f.name, {})[algo] = _field_default(f)
            helps.setdefault(f.name, {}).setdefault(f.metadata.get("help", ""), []).append(algo)
    seen: set[str] = set()
    for title, cls in groups:
        hints = typing.get_type_hints(cls)
        new = [f for f in dataclasses.fields(cls) if f.name not in seen]
        seen.update(f.name for f in new)
        spec = []
        for f in new:
            per_algo = defaults.get(f.name, {})
            shown = _field_default(f)
            if len({repr(v) for v in per_algo.values()}) > 1:
                shown = ", ".join(f"{a} {v}" for a, v in per_algo.items())
            texts = helps.get(f.name, {f.metadata.get("help", ""): []})
            help_text = " ".join(t if i == 0 else f"{', '.join(a)}: {t}" for i, (t, a) in enumerate(texts.items()))
            field = dataclasses.field(default_factory=lambda v=shown: v, metadata={**f.metadata, "help": help_text})
            spec.append((f.name, hints[f.name], field))
        before = {a.dest for a in p._actions}
        shown_cls = dataclasses.make_dataclass(cls.__name__, spec, namespace={"__doc__": cls.__doc__})
        add_dataclass_args(p, shown_cls, title)
        if cls is not algo_config_class("sac"):
            for action in p._actions:
                if action.dest not in before and action.metavar == "BOOL":
                    action.nargs, action.const = "?", True


def _field_default(f: dataclasses.Field) -> typing.Any:
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]


def resolve(args: argparse.Namespace) -> tuple[RunConfig, Any, PruneConfig]:
    """Layer dataclass defaults, the recipe and the explicit flags into typed configs."""
    flags = {k: v for k, v in vars(args).items() if v is not None}
    algo = flags.get("algo", RunConfig.algo)
    env = flags.get("env", RunConfig.env)
    algo_cls = algo_config_class(algo)
    allowed = {f for cls in (RunConfig, PruneConfig, algo_cls) for f in cls.__dataclass_fields__}
    recipe_path = Path(flags["recipe"]) if "recipe" in flags else default_recipe(algo)
    recipe = load_recipe(recipe_path, env, allowed) if recipe_path.exists() or "recipe" in flags else {}
    run = from_sources(RunConfig, recipe, flags)
    algo_cfg = from_sources(algo_cls, recipe, flags)
    prune = from_sources(PruneConfig, recipe, flags)
    validate(run, prune)
    return run, algo_cfg, prune


def validate(run: RunConfig, prune: PruneConfig) -> None:
    if run.total_steps <= 0:
        raise ConfigError(f"--total-steps must be positive, got {run.total_steps}")
    if prune.prune not in ("none", "gradual", "unstructured", "naive", "gates"):
        raise ConfigError(f"--prune {prune.prune!r}: choose none, gradual, unstructured, naive or gates")
    if not 0.0 <= prune.final_ratio < 1.0:
        raise ConfigError(f"--final-ratio must be in [0, 1), got {prune.final_ratio}")
    if not 0.0 <= prune.prune_start <= prune.prune_end <= 1.0:
        raise ConfigError(f"need 0 <= --prune-start <= --prune-end <= 1, got {prune.prune_start}, {prune.prune_end}")


RESUME_OVERRIDES = ("total_steps", "progress", "device")
"""What ``--resume`` lets a flag change; every other setting is the run's own."""
RUN_FILES = ("ckpt.pt", "metrics.csv", "replay-*.npz")
"""What ``edgerl train`` writes into ``--out`` (and ``--overwrite`` deletes)."""


def resolve_resume(args: argparse.Namespace) -> tuple[RunConfig, Any, PruneConfig]:
    """The config stored in the run's checkpoint; only total-steps, progress and device may change.

    Other flags are refused when they disagree with the stored config (they would be ignored)."""
    from edgerl.algos.run import check_resumable
    from edgerl.checkpoint import load_checkpoint

    path = Path(args.resume) / "ckpt.pt"
    ckpt = load_checkpoint(path)
    check_resumable(ckpt, path)
    stored = ckpt["config"]
    algo = ckpt["algo"]
    if algo not in ALGOS or stored["run"].get("algo", algo) != algo:
        raise CheckpointError(f"{path}: checkpoint says algo {str(algo)[:20]!r} but its config says "
                              f"{str(stored['run'].get('algo'))[:20]!r}; the file is damaged or relabelled")
    algo_cls = algo_config_class(algo)
    unknown = sorted(set(stored["algo"]) - set(algo_cls.__dataclass_fields__))
    if unknown:
        raise CheckpointError(f"{path}: the stored {algo} config has settings {unknown[:5]} that {algo_cls.__name__} "
                              "does not know; the checkpoint is damaged, relabelled or from another edgerl version")
    override = {k: getattr(args, k) for k in RESUME_OVERRIDES if getattr(args, k, None) is not None}
    try:
        run = from_sources(RunConfig, stored["run"], {"out": args.resume, "algo": algo}, override)
        algo_cfg = from_sources(algo_cls, stored["algo"])
        prune = from_sources(PruneConfig, {"prune_nets": "all", "gate_actor_grad": False},
                             stored["prune"])  # what runs made before these settings existed did
    except ConfigError as e:
        if set(override) & {"total_steps"} and "--total-steps" in str(e):
            raise
        raise CheckpointError(f"{path}: its stored config is invalid ({e}); the file is damaged") from None
    done = ckpt["counters"]["global_step"]
    if run.total_steps < done:
        raise ConfigError(f"--total-steps {run.total_steps} is below the {done} steps the run in {args.resume} has "
                          f"done; pass --total-steps >= {done}")
    _refuse_ignored_flags(args, (run, algo_cfg, prune))
    return run, algo_cfg, prune


def _refuse_ignored_flags(args: argparse.Namespace, configs: tuple[Any, ...]) -> None:
    """A flag given with ``--resume`` that disagrees with the stored config is an error."""
    given = {k: v for k, v in vars(args).items()
             if v is not None and k not in (*RESUME_OVERRIDES, "resume", "recipe", "print_config", "overwrite", "command",
                                            "func")}
    differ = []
    for key, value in given.items():
        for cfg in configs:
            if key in cfg.__dataclass_fields__:
                if key == "out":
                    same = Path(value).resolve() == Path(args.resume).resolve()
                else:
                    same = from_sources(type(cfg), {key: value}).__dict__[key] == getattr(cfg, key)
                if not same:
                    differ.append(f"--{key.replace('_', '-')} {value if not isinstance(value, list) else ','.join(map(str, value))}"
                                  f" (the run has {getattr(cfg, key) if key != 'out' else args.resume})")
                break
    if args.recipe is not None:
        differ.append(f"--recipe {args.recipe} (the run's settings were resolved when it started)")
    if differ:
        raise ConfigError(f"--resume continues {args.resume} with its stored settings; only --total-steps, --progress and --device "
                          f"may change, but got {'; '.join(differ)[:300]}: drop them or start a new --out")


def check_out(run_cfg: RunConfig, overwrite: bool) -> None:
    """``--out`` is a folder that holds no run, or ``--overwrite`` deletes the run's files."""
    out = Path(run_cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; pass a run folder (it is created if missing)")
    if not out.is_dir():
        return
    found = sorted({p.name for pattern in RUN_FILES for p in out.glob(pattern)})
    if not found:
        return
    if not overwrite:
        raise ConfigError(f"--out {out} already holds a run ({', '.join(found[:4])}); continue it with --resume {out}, "
                          f"choose a new --out, or pass --overwrite to delete {', '.join(RUN_FILES)} there")
    for name in found:
        (out / name).unlink(missing_ok=True)
    print(f"edgerl train: --overwrite: deleted {', '.join(found)} in {out}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    if args.resume and args.overwrite:
        raise ConfigError("--overwrite starts a new run and --resume continues one; pass one of them")
    run_cfg, algo_cfg, prune = resolve_resume(args) if args.resume else resolve(args)
    if args.print_config:
        print(json.dumps({"run": to_dict(run_cfg), "algo": to_dict(algo_cfg), "prune": to_dict(prune)}, indent=2))
        return 0
    if not args.resume:
        check_out(run_cfg, args.overwrite)
    from edgerl.prune.hooks import make_hooks

    if run_cfg.algo == "sac":
        from edgerl.algos.sac_train import train_sac

        summary = train_sac(run_cfg, algo_cfg, prune, resume=bool(args.resume), make_hooks=make_hooks)
    elif run_cfg.algo == "ppo":
        from edgerl.algos.ppo_train import train_ppo

        summary = train_ppo(run_cfg, algo_cfg, prune, resume=bool(args.resume), make_hooks=make_hooks)
    elif run_cfg.algo == "dqn":
        from edgerl.algos.dqn_train import train_dqn

        summary = train_dqn(run_cfg, algo_cfg, prune, resume=bool(args.resume), make_hooks=make_hooks)
    else:
        raise ConfigError(f"unknown algo {run_cfg.algo!r}")
    print_summary(summary)
    return 0


def print_summary(summary: dict[str, Any]) -> None:
    width = max(len(k) for k in summary)
    print("training finished")
    for k, v in summary.items():
        if isinstance(v, float):
            v = f"{v:.2f}"
        print(f"  {k:<{width}}  {v}")

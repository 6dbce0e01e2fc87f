"""A sweep spec: envs x seeds x variants of ``edgerl train`` flags, read from a bounded YAML file.

```yaml
name: compare_pruning
envs: [Hopper-v5, HalfCheetah-v5]
seeds: [1, 2, 3]
train: {total_steps: 100000, eval_every: 5000}      # flags of every run
variants:
  dense: {hidden: "256,256"}
  gradual-0.8: {hidden: "1024,1024", prune: gradual, final_ratio: 0.8}
  scratch: {scratch_of: gradual-0.8}                 # that run's final architecture, from scratch
  student-32: {distill_of: dense, distill: {widths: [32, 32]}}          # edgerl distill of that run
  pruned-distilled: {distill_of: dense, distill: {init_from: gradual-0.8}}  # prune, then distill
metric: {last: 3}                                    # mean of the last 3 evaluations
```

A distilled variant runs ``edgerl distill`` on the teacher variant's run of the same env and seed
(its ``distill`` keys are ``edgerl distill`` flags, plus ``init_from``: start the student from that
variant's pruned networks); its score is the student's return over the distillation's evaluation
episodes.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgerl.errors import ConfigError

MAX_SPEC_BYTES = 256 * 1024
OWNED = {"env", "seed", "out", "resume", "progress"}
"""Flags the sweep sets itself for every run."""
SPECIAL = {"scratch_of", "distill_of", "distill"}
DISTILL_OWNED = {"seed", "progress", "threads"}
"""``edgerl distill`` flags the sweep sets itself (the run's seed, one thread, no progress bar)."""
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")


@dataclass
class RunPlan:
    """One training run of a sweep."""

    variant: str
    env: str
    seed: int
    folder: Path
    flags: dict[str, Any]
    scratch_of: str | None = None
    distill_of: str | None = None
    """Teacher variant of a distilled run (its run of the same env and seed)."""
    distill: dict[str, Any] = field(default_factory=dict)
    """``edgerl distill`` flags of a distilled run, plus ``init_from`` (a variant name)."""

    def source(self, variant: str) -> Path:
        """The folder of ``variant``'s run of this env and seed (sweep folders are out/env/variant/seedN)."""
        return self.folder.parent.parent / variant / self.folder.name

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.variant, self.env, self.seed)


@dataclass
class SweepSpec:
    """What a spec file holds, validated."""

    name: str
    envs: list[str]
    seeds: list[int]
    variants: dict[str, dict[str, Any]]
    train: dict[str, Any] = field(default_factory=dict)
    last: int = 1
    source: str = ""

    def plans(self, out: Path) -> list[RunPlan]:
        """Every run, in variant order (derived variants after their sources)."""
        plans = []
        for variant, flags in self.variants.items():
            own = {k: v for k, v in flags.items() if k not in SPECIAL}
            for env in self.envs:
                for seed in self.seeds:
                    folder = out / env.replace("/", "_") / variant / f"seed{seed}"
                    if "distill_of" in flags:  # no training flags: the teacher's run has them
                        plans.append(RunPlan(variant, env, seed, folder, {}, distill_of=flags["distill_of"],
                                             distill=dict(flags.get("distill") or {})))
                        continue
                    plans.append(RunPlan(variant, env, seed, folder, {**self.train, **own}, flags.get("scratch_of")))
        return plans

    def select(self, names: set[str]) -> None:
        """Keep only the variants ``names`` (names the spec lacks are ignored) and the variants
        their derived runs start from (``scratch_of``, ``distill_of``, ``distill.init_from``), in
        spec order."""
        keep: set[str | None] = set(names)
        for name in names:
            flags = self.variants.get(name, {})
            keep |= {flags.get("scratch_of"), flags.get("distill_of"), (flags.get("distill") or {}).get("init_from")}
        self.variants = {k: v for k, v in self.variants.items() if k in keep}


def train_flag_names() -> set[str]:
    """Every ``edgerl train`` flag name (config field names, underscored), plus ``recipe``."""
    from edgerl.commands.train import ALGOS, algo_config_class
    from edgerl.config import PruneConfig, RunConfig

    names = {f.name for cls in (RunConfig, PruneConfig) for f in dataclasses.fields(cls)}
    for algo in ALGOS:
        names |= {f.name for f in dataclasses.fields(algo_config_class(algo))}
    return names | {"recipe"}


def read_yaml(path: Path) -> Any:
    """``yaml.safe_load`` of a file of at most ``MAX_SPEC_BYTES``.

    (When ``edgerl.config`` has its alias-bomb-safe loader, this is the one line to switch.)
    """
    import yaml

    if not path.is_file():
        raise ConfigError(f"sweep spec {path} does not exist")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise ConfigError(f"sweep spec {path} is larger than {MAX_SPEC_BYTES // 1024} KiB; a spec lists flags, not data")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"sweep spec {path} is not valid YAML: {str(e).splitlines()[0]}") from e


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> SweepSpec:
    """Read and validate a spec; ``overrides`` replaces ``envs``/``seeds`` and adds ``train`` flags."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"sweep spec {path} must be a mapping with envs, seeds and variants")
    unknown = set(data) - {"name", "envs", "seeds", "train", "variants", "metric"}
    if unknown:
        raise ConfigError(f"sweep spec {path}: unknown keys {sorted(unknown)}; "
                          "known: name, envs, seeds, train, variants, metric")
    overrides = overrides or {}
    envs = overrides.get("envs") or data.get("envs")
    seeds = overrides.get("seeds") or data.get("seeds")
    if not isinstance(envs, list) or not envs or not all(isinstance(e, str) and e for e in envs):
        raise ConfigError(f"sweep spec {path}: 'envs' must be a non-empty list of env ids")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"sweep spec {path}: 'seeds' must be a non-empty list of integers")
    if len(set(seeds)) != len(seeds) or len(set(envs)) != len(envs):
        raise ConfigError(f"sweep spec {path}: envs and seeds must not repeat")
    known = train_flag_names()
    train = {**_flags(path, "train", data.get("train") or {}, known), **_flags(path, "--set", overrides.get("train") or {}, known)}
    variants = data.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise ConfigError(f"sweep spec {path}: 'variants' must map variant names to flags")
    checked: dict[str, dict[str, Any]] = {}
    for name, flags in variants.items():
        if not isinstance(name, str) or not NAME.match(name):
            raise ConfigError(f"sweep spec {path}: variant name {name!r} must be 1-64 letters, digits, '_.+-'")
        if isinstance(flags, dict) and "distill_of" in flags:
            checked[name] = _distill_variant(path, name, flags, checked)
            continue
        checked[name] = _flags(path, f"variant {name!r}", flags or {}, known | SPECIAL - {"distill"})
        src = checked[name].get("scratch_of")
        if src is not None and not _trained(checked, src):
            raise ConfigError(f"sweep spec {path}: variant {name!r}: scratch_of must name an earlier, "
                              f"non-derived variant, got {src!r}")
    metric = data.get("metric") or {}
    last = metric.get("last", 1) if isinstance(metric, dict) else None
    if not isinstance(last, int) or isinstance(last, bool) or last < 1:
        raise ConfigError(f"sweep spec {path}: metric must be {{last: N}} with N >= 1 evaluations")
    name = str(data.get("name") or path.stem)
    return SweepSpec(name, envs, seeds, checked, train, last, str(path))


def _trained(checked: dict[str, dict[str, Any]], name: Any) -> bool:
    """Whether ``name`` is an earlier variant trained by its own flags (not derived from another)."""
    return isinstance(name, str) and name in checked and not ({"scratch_of", "distill_of"} & set(checked[name]))


def _distill_variant(path: Path, name: str, flags: dict[str, Any], checked: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Validate ``{distill_of: VARIANT, distill: {edgerl distill flags, init_from: VARIANT}}``."""
    from edgerl.distill.config import DistillConfig

    where = f"variant {name!r}"
    extra = set(flags) - {"distill_of", "distill"}
    if extra:
        raise ConfigError(f"sweep spec {path}: {where} distils another run and takes no train flags, got "
                          f"{sorted(extra)}; put them on the teacher variant")
    if not _trained(checked, flags["distill_of"]):
        raise ConfigError(f"sweep spec {path}: {where}: distill_of must name an earlier, non-derived variant, "
                          f"got {flags['distill_of']!r}")
    known = {f.name for f in dataclasses.fields(DistillConfig)}
    options = flags.get("distill") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"sweep spec {path}: {where}: distill must map `edgerl distill` flags to values")
    out = _flags(path, f"{where} distill", {k: v for k, v in options.items() if k != "init_from"}, known,
                 what="distill flag", help_cmd="edgerl distill --help", owned=DISTILL_OWNED)
    from edgerl.config import from_sources
    from edgerl.distill.api import check_config

    try:  # values checked now, not after the teacher has trained for hours
        cfg = from_sources(DistillConfig, out)
        check_config(cfg)
    except ConfigError as e:
        raise ConfigError(f"sweep spec {path}: {where} distill: {e}") from None
    if cfg.eval_episodes < 1:
        raise ConfigError(f"sweep spec {path}: {where} distill: eval_episodes must be at least 1 (the run's score is "
                          "the student's return)")
    if "init_from" in options:
        if not _trained(checked, options["init_from"]):
            raise ConfigError(f"sweep spec {path}: {where}: distill.init_from must name an earlier, non-derived "
                              f"variant, got {options['init_from']!r}")
        out["init_from"] = options["init_from"]
    return {"distill_of": flags["distill_of"], "distill": out}


def _flags(path: Path, where: str, flags: Any, known: set[str], what: str = "train flag",
           help_cmd: str = "edgerl train --help", owned: set[str] = OWNED) -> dict[str, Any]:
    if not isinstance(flags, dict):
        raise ConfigError(f"sweep spec {path}: {where} must be a mapping of train flags")
    out: dict[str, Any] = {}
    for key, value in flags.items():
        name = str(key).replace("-", "_")
        if name in owned:
            raise ConfigError(f"sweep spec {path}: {where} sets {key!r}, which the sweep sets per run (envs, seeds, folders)")
        if name not in known:
            raise ConfigError(f"sweep spec {path}: {where} has unknown {what} {key!r}; see `{help_cmd}`")
        if isinstance(value, (dict, type(None))):
            raise ConfigError(f"sweep spec {path}: {where}: {key} needs a value (number, string, bool or list)")
        out[name] = value
    return out


def flag_args(flags: dict[str, Any]) -> list[str]:
    """``{"final_ratio": 0.8, "hidden": [64, 64]}`` -> ``["--final-ratio", "0.8", "--hidden", "64,64"]``."""
    args: list[str] = []
    for key, value in flags.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        args += ["--" + key.replace("_", "-"), text]
    return args

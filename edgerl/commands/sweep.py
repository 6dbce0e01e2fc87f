"""``edgerl sweep SPEC.yaml``: train envs x seeds x variants, one run folder each, and summarise
them (mean and 95% bootstrap interval per variant); a re-run continues a killed sweep."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC.yaml", help="sweep spec (e.g. profiles/sweeps/compare_pruning.yaml)")
    p.add_argument("--out", default=None, help="sweep folder (default: runs/sweeps/<spec name>)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: a pool of --jobs 1-thread processes; ray: one task per run on a Ray cluster")
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2)),
                   help="local executor: runs at once (default: the CPU count)")
    p.add_argument("--address", default=None, help="ray executor: cluster address (default: start a local instance)")
    p.add_argument("--envs", default=None, help="comma-separated env ids instead of the spec's")
    p.add_argument("--seeds", default=None, help="comma-separated seeds instead of the spec's")
    p.add_argument("--set", action="append", default=[], metavar="FLAG=VALUE",
                   help="a train flag for every run, e.g. --set total_steps=20000 (repeatable)")


def run(args: argparse.Namespace) -> int:
    from edgerl.errors import ConfigError
    from edgerl.sweep import load_spec, run_sweep
    from edgerl.sweep.results import markdown

    overrides: dict = {"train": {}}
    if args.envs:
        overrides["envs"] = [e for e in args.envs.split(",") if e]
    if args.seeds:
        try:
            overrides["seeds"] = [int(s) for s in args.seeds.split(",") if s]
        except ValueError as e:
            raise ConfigError(f"--seeds {args.seeds!r}: expected comma-separated integers") from e
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected FLAG=VALUE, e.g. total_steps=20000")
        overrides["train"][key.strip()] = value.strip()
    spec = load_spec(args.spec, overrides)
    out = Path(args.out or Path("runs") / "sweeps" / spec.name)
    command = "edgerl sweep " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else "edgerl sweep"
    rows = run_sweep(spec, out, args.executor, args.jobs, args.address, command)
    print(markdown(spec, rows))
    print(f"\nresults: {out / 'results.md'}")
    return 0

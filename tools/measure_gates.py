#!/usr/bin/env python
"""Gate-based pruning of SAC + OFENet, measured: dense SAC, SAC + OFENet, SAC + OFENet with
Bernoulli gates (cost-aware regulariser), and the pruned architecture trained from scratch.

    .venv/bin/python tools/measure_gates.py --envs Hopper-v5,HalfCheetah-v5 --steps 300000 \\
        --seeds 1,2,3 --jobs 2 --out runs/gates

The runs are the sweep ``profiles/sweeps/measure_gates.yaml`` (``edgerl sweep`` runs it as
1-thread processes, ``--jobs`` at once, resuming killed runs; every gated variant is named
``ofenet-gates-<tag>`` and its from-scratch twin ``ofenet-scratch-<tag>``, ``scratch_of`` it).
Lambda has no universal scale: the gates follow Adam, so a unit closes when lambda * (its
parameter cost) outweighs the mean gradient of its network's own loss, and OFENet's prediction
loss gives ~10x smaller gate gradients than the critics' (measured on Hopper: |dL/dxi| ~ 1e-3
OFENet, 2e-3 actor, 1.5e-2 critics, per-unit costs 50-500 parameters); ``gate_target`` steers it.
This tool adds to the sweep's results: ``results.json`` (``results``: per run the deployed
params and MACs, i.e. OFENet state block + actor trunk + mean head, widths, width history),
a second table and the goal check in ``results.md``, and, with matplotlib,
``widths-<env>-<variant>.png`` (surviving units per gated layer over training).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    from edgerl.bench.reports.measure_gates import goal_check, plot_widths, summarize, table
    from edgerl.sweep import load_spec, run_sweep
    from edgerl.sweep.results import add_run_summaries, run_summaries

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default=str(REPO / "profiles" / "sweeps" / "measure_gates.yaml"))
    p.add_argument("--envs", default=None, help="comma-separated env ids (default: the spec's)")
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default: the spec's)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the spec's)")
    p.add_argument("--variants", default=None, help="comma-separated subset of the spec's variants")
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--eval-episodes", type=int, default=None)
    p.add_argument("--learning-starts", type=int, default=None, help="override the recipe warm-up")
    p.add_argument("--checkpoint-every", type=int, default=None)
    for flag, kind in (("gate-target", float), ("gate-lambda", float), ("gate-cost", str), ("prune-start", float),
                       ("prune-end", float), ("prune-every", int)):
        p.add_argument(f"--{flag}", type=kind, default=None, help="for the gated variants (default: the spec's)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="runs/gates")
    args = p.parse_args()
    train = {k: v for k, v in {"total_steps": args.steps, "eval_every": args.eval_every,
                               "eval_episodes": args.eval_episodes, "learning_starts": args.learning_starts,
                               "checkpoint_every": args.checkpoint_every}.items() if v is not None}
    gated = {k: getattr(args, k) for k in ("gate_target", "gate_lambda", "gate_cost", "prune_start", "prune_end",
                                           "prune_every") if getattr(args, k) is not None}
    spec = load_spec(args.spec, {"envs": args.envs.split(",") if args.envs else None,
                                 "seeds": [int(s) for s in args.seeds.split(",")] if args.seeds else None,
                                 "train": train})
    if args.variants:
        keep = set(args.variants.split(","))
        unknown = sorted(keep - set(spec.variants))
        if unknown:
            p.error(f"unknown variants {unknown}; the spec has {sorted(spec.variants)}")
        spec.select(keep)
    for flags in spec.variants.values():
        if flags.get("prune") == "gates":
            flags.update(gated)
    out = Path(args.out)
    cmd = "python tools/measure_gates.py " + " ".join(sys.argv[1:])
    run_sweep(spec, out, jobs=args.jobs, command=cmd)
    results = run_summaries(spec, out, summarize)
    plots = plot_widths(results, out)
    md = table(results) + "\n\n" + goal_check(results)
    add_run_summaries(out, spec, args.spec, results, md, plots)
    print(md)


if __name__ == "__main__":
    main()

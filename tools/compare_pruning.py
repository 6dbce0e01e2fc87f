#!/usr/bin/env python
"""The comparison the pruning papers make, on MuJoCo with SAC: dense, gradual group pruning of a
scaled-up network at several final ratios, unstructured masked pruning, and a small network
trained from scratch at the final widths of gradual pruning at 0.8.

    .venv/bin/python tools/compare_pruning.py --envs Hopper-v5,HalfCheetah-v5 --steps 100000 \
        --seeds 1,2,3 --jobs 2 --out runs/compare

The runs are the sweep ``profiles/sweeps/compare_pruning.yaml`` (``edgerl sweep`` runs it, as
1-thread processes, ``--jobs`` at once, resuming killed runs; its variants and widths live in
the spec). This tool adds what ``tools/make_reports.py`` reads: per run the actor's params,
nonzero params, MACs and widths, in ``results.json`` (``results``, beside the sweep's ``rows``)
and a second table in ``results.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    from edgerl.bench.reports.compare_pruning import summarize, table
    from edgerl.sweep import load_spec, run_sweep
    from edgerl.sweep.results import add_run_summaries, run_summaries

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default=str(REPO / "profiles" / "sweeps" / "compare_pruning.yaml"))
    p.add_argument("--envs", default=None, help="comma-separated env ids (default: the spec's)")
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default: the spec's)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the spec's)")
    p.add_argument("--only", default=None, help="comma-separated subset of variants (scratch keeps its source)")
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--eval-episodes", type=int, default=None)
    p.add_argument("--learning-starts", type=int, default=None, help="override the recipe warm-up")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="runs/compare")
    args = p.parse_args()
    train = {k: v for k, v in {"total_steps": args.steps, "eval_every": args.eval_every,
                               "eval_episodes": args.eval_episodes, "learning_starts": args.learning_starts}.items()
             if v is not None}
    spec = load_spec(args.spec, {"envs": args.envs.split(",") if args.envs else None,
                                 "seeds": [int(s) for s in args.seeds.split(",")] if args.seeds else None,
                                 "train": train})
    if args.only:
        spec.select(set(args.only.split(",")))
    out = Path(args.out)
    cmd = "python tools/compare_pruning.py " + " ".join(sys.argv[1:])
    run_sweep(spec, out, jobs=args.jobs, command=cmd)
    results = run_summaries(spec, out, summarize)
    md = table(results)
    add_run_summaries(out, spec, args.spec, results, md)
    print(md)


if __name__ == "__main__":
    main()

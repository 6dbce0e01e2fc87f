#!/usr/bin/env python
"""Regenerate docs/benchmarks/compression.md and its plot: which compact SAC policy keeps the return.

    .venv/bin/python tools/compression_table.py --envs HalfCheetah-v5,Hopper-v5,Walker2d-v5 \\
        --seeds 1,2,3 --steps 100000

Runs are trained (1 thread each) in ``--runs`` and measured; each finished run is one JSON file in
``--results`` (commit those; the checkpoints are not needed again). Rerunning the same command
skips finished runs and resumes an interrupted training, so the table can be filled over several
sessions or machines. ``--workers N`` runs N worker processes on one queue (one per core); workers
on other machines that share ``--runs`` join it too, each run claimed by a lock while it trains.
``--status`` lists each run as done, running (claimed) or waiting. ``--render-only`` rewrites the
page and plot from the results folder; ``--retime`` re-times the finished runs' graphs of each env
together (interleaved) for a latency column measured in one run. The order is seed by seed
(``--order seed``: every env's seed 1 first) or env by env (``--order env``), then ``--variants``;
the logic lives in ``edgerl/bench/compression.py``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_VARIANTS = ("dense,gradual-actor,scratch-gradual,distill-gradual,distill-32,scaled,distill-scaled-32,"
                    "distill-scaled-gradual,distill-32-from-102,gradual-all,"
                    "scratch-32,gates,distill-gates-32,distill-gates-gradual")


def main() -> None:
    from edgerl.bench import compression as c
    from edgerl.runtime.fileio import atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--envs", default="HalfCheetah-v5,Hopper-v5,Walker2d-v5")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"in queue order, from {', '.join(c.variants())}")
    p.add_argument("--results", default="docs/benchmarks/compression/results")
    p.add_argument("--runs", default="runs/compression")
    p.add_argument("--out", default="docs/benchmarks/compression.md")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--distill-args", default="", help="extra `edgerl distill` flags, e.g. '--rounds 6'")
    p.add_argument("--order", choices=("seed", "env"), default="seed",
                   help="seed: every env's seed 1 before any seed 2; env: one env's seeds before the next env")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine, one run (1 thread) each")
    p.add_argument("--render-only", action="store_true")
    p.add_argument("--status", action="store_true", help="print each run of the queue: done, running (claimed), "
                   "or waiting, and exit")
    p.add_argument("--retime", action="store_true",
                   help="only re-time the ORT p50 of the finished runs' graphs in --runs, each env's interleaved "
                        "in one measurement (run it on a quiet machine), then render")
    args = p.parse_args()
    unknown = set(args.variants.split(",")) - set(c.variants())
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; known: {', '.join(c.variants())}")
    if not 1 <= args.workers <= (os.cpu_count() or 1):
        p.error(f"--workers {args.workers}: choose 1 to {os.cpu_count()} (one per core)")
    envs, seeds, vs = args.envs.split(","), [int(s) for s in args.seeds.split(",")], args.variants.split(",")
    queue = ([c.RunKey(e, v, s) for s in seeds for e in envs for v in vs] if args.order == "seed"
             else [c.RunKey(e, v, s) for e in envs for s in seeds for v in vs])
    results, out = REPO / args.results, REPO / args.out
    flags = [a for a in sys.argv[1:] if a not in ("--render-only", "--retime")]
    command = shlex.join(["python", "tools/compression_table.py", *flags])

    def render(_: Path | None = None) -> None:
        groups: dict[tuple[str, int], list[str]] = {}
        for k in queue:
            if not c.result_path(results, k).exists():
                groups.setdefault((k.env, k.seed), []).append(k.variant)
        pending = [f"{env} seed {seed} ({args.steps} steps): {', '.join(vs)}" for (env, seed), vs in groups.items()]
        rows = c.load_results(results)
        atomic_write_text(out, c.render_markdown(rows, command, pending))
        if c.plot(rows, out.with_suffix(".png")):
            print(f"wrote {out} and {out.with_suffix('.png')}", flush=True)

    if args.status:
        print("\n".join(c.queue_status(queue, results, REPO / args.runs)))
        return
    if args.render_only:
        pass
    elif args.retime:
        n = c.retime_latency(results, REPO / args.runs, log=lambda s: print(s, flush=True), min_queries=3000,
                             min_seconds=2.0, rounds=20)
        print(f"re-timed {n} runs", flush=True)
    elif args.workers > 1:  # N copies of this command with --workers 1, sharing the queue through the claims
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        one = [sys.executable, __file__, *flags, "--workers", "1"]
        procs = [subprocess.Popen(one, env=env) for _ in range(args.workers)]
        try:
            codes = [proc.wait() for proc in procs]
        finally:
            for proc in procs:
                proc.terminate()
        if any(codes):
            sys.exit(f"a worker failed (exit codes {codes}); rerun the same command to resume")
    else:
        c.run_queue(queue, args.steps, results, REPO / args.runs, episodes=args.episodes,
                    distill_args=args.distill_args.split(), log=lambda s: print(s, flush=True), on_result=render)
    render()


if __name__ == "__main__":
    main()

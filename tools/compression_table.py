#!/usr/bin/env python
"""Regenerate docs/benchmarks/compression.md and its plot: which compact SAC policy keeps the return.

    .venv/bin/python tools/compression_table.py --envs HalfCheetah-v5,Hopper-v5,Walker2d-v5 \\
        --seeds 1,2,3 --steps 100000

Runs are trained one at a time (1 thread) in ``--runs`` and measured; each finished run is one JSON
file in ``--results`` (commit those; the checkpoints are not needed again). Rerunning the same
command skips finished runs and resumes an interrupted training, so the table can be filled over
several sessions or machines. ``--render-only`` rewrites the page and plot from the results folder.
The order is env by env, seed by seed, then ``--variants``; the logic lives in
``edgerl/bench/compression.py``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEFAULT_VARIANTS = ("dense,gradual-actor,scratch-gradual,distill-gradual,distill-32,scaled,distill-scaled-32,"
                    "distill-scaled-gradual,distill-32-from-102,gradual-all,"
                    "scratch-32,gates")


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
    p.add_argument("--render-only", action="store_true")
    args = p.parse_args()
    unknown = set(args.variants.split(",")) - set(c.variants())
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; known: {', '.join(c.variants())}")
    queue = [c.RunKey(env, v, int(s)) for env in args.envs.split(",") for s in args.seeds.split(",")
             for v in args.variants.split(",")]
    results, out = REPO / args.results, REPO / args.out
    command = shlex.join(["python", "tools/compression_table.py", *(a for a in sys.argv[1:] if a != "--render-only")])

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

    if not args.render_only:
        c.run_queue(queue, args.steps, results, REPO / args.runs, episodes=args.episodes,
                    distill_args=args.distill_args.split(), log=lambda s: print(s, flush=True), on_result=render)
    render()


if __name__ == "__main__":
    main()

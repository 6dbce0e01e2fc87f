#!/usr/bin/env python
"""Which continuous distillation loss keeps the return: MSE of the squashed actions or of the
pre-tanh means. Distils one teacher at each width with both losses (same data, seeds, steps) and
prints the held-out action error and the return next to the teacher's on the same env seeds.

    .venv/bin/python tools/measure_distill_loss.py runs/teacher/ckpt.pt --widths 32,32 64,64 \\
        --json docs/benchmarks/distill_loss.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    import torch

    from edgerl.bench.returns import format_ci
    from edgerl.distill import DistillConfig, distill
    from edgerl.runtime.fileio import atomic_write_text

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("teacher")
    p.add_argument("--widths", nargs="+", default=["32,32", "64,64"])
    p.add_argument("--losses", default="action,mean")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--steps-per-round", type=int, default=3000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--out", default="runs/distill_loss")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for widths in args.widths:
        for loss in args.losses.split(","):
            cfg = DistillConfig(widths=[int(w) for w in widths.split(",")], loss=loss, rounds=args.rounds,
                                steps_per_round=args.steps_per_round, eval_episodes=args.eval_episodes,
                                progress=False)
            out = Path(args.out) / f"{loss}-{widths.replace(',', 'x')}.pt"
            r = distill(args.teacher, out, cfg, log=lambda _: None)
            rows.append({"widths": widths, "loss": loss, "params": r.student_params, **r.heldout,
                         "teacher": r.teacher_return, "student": r.student_return, "ratio": r.return_ratio,
                         "wall_s": r.wall_s})
            print(f"{widths:>8s} {loss:>6s} params {r.student_params:>6,}  held-out |a| error "
                  f"{r.heldout.get('action_mae', float('nan')):.4f}  return {format_ci(r.student_return)} vs teacher "
                  f"{format_ci(r.teacher_return)} ({100 * (r.return_ratio or float('nan')):.0f}%)  {r.wall_s:.0f} s",
                  flush=True)
    if args.json:
        atomic_write_text(args.json, json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

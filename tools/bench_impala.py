"""Impala-CNN agents dense and pruned by groups: parameters, MACs and batch-1 CPU latency in ONNX Runtime.

Models (``ActorCriticCNN``, hidden 256, 15 actions as in Procgen; the deployed graph is uint8 frames
-> scale -> Impala-CNN -> logits -> argmax): dense tau = 1, dense tau = 3, and tau = 3 pruned by
groups (L1, ``GradualPruner``) to channel ratios 0.8 and 0.9, each without and with ``round_to=8``
(REFERENCE.md section 4). Weights are a fresh initialisation: latency depends on shapes only.

Each model is exported with edgerl's exporter (``ArgmaxPolicy`` + ``export_onnx``), checked
against torch on random frames, then timed as single-stream batch-1 calls of a bare
``InferenceSession.run`` (1 intra-op and 1 inter-op thread, sequential, ORT_ENABLE_ALL): all
models interleaved in rounds with alternating order (``edgerl.bench.latency.measure``), p50/p90/p99.

Usage::

    python tools/bench_impala.py                                  # 3x64x64 (Procgen frames)
    python tools/bench_impala.py --shapes 3x64x64,4x84x84         # also stacked Atari frames
    python tools/bench_impala.py --markdown docs/benchmarks/impala_latency.md

The goal it checks: tau = 3 pruned at 0.8 runs at most 0.1x the dense tau = 3 latency (p50) and
no slower than dense tau = 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from edgerl.bench.device import device_info
from edgerl.bench.impala import bench_shape, goal_line, goals, markdown, table
from edgerl.export.errors import ExportCheckError
from edgerl.runtime.fileio import atomic_write_text

REPO = Path(__file__).resolve().parent.parent


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"3x64x64"`` -> ``(3, 64, 64)`` (channels first)."""
    try:
        c, h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must look like 3x64x64 (channels x height x width), got {text!r}") from None
    return c, h, w


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="3x64x64", help="comma-separated frame shapes CxHxW (default: %(default)s)")
    p.add_argument("--min-queries", type=int, default=1000, help="timed calls per model, at least")
    p.add_argument("--min-seconds", type=float, default=3.0, help="timed seconds per model, at least")
    p.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    p.add_argument("--warmup", type=int, default=200, help="untimed calls per model before timing")
    p.add_argument("--exporter", default="auto", choices=("auto", "dynamo", "legacy"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=str(REPO / "runs" / "bench" / "impala_latency.json"), help="report JSON")
    p.add_argument("--markdown", default=None, help="also write the Markdown page here")
    args = p.parse_args(argv)
    shapes = [parse_shape(s) for s in args.shapes.split(",") if s]
    torch.set_num_threads(1)
    command = "python tools/bench_impala.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None
                                                                                    else sys.argv[1:]))
    timing = {"min_queries": args.min_queries, "min_seconds": args.min_seconds, "rounds": args.rounds,
              "warmup": args.warmup}
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-impala-") as tmp:
        for shape in shapes:
            print(f"input {'x'.join(map(str, shape))}:", flush=True)
            try:
                rows += bench_shape(shape, Path(tmp), timing, args.seed, args.exporter,
                                    log=lambda s: print(s, flush=True))
            except ExportCheckError as e:
                raise SystemExit(str(e)) from None
    report = {
        "command": command.strip(),
        "device": device_info(1),
        "config": {k: getattr(args, k) for k in ("shapes", "min_queries", "min_seconds", "rounds", "warmup",
                                                 "exporter", "seed")},
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "rows": rows,
        "goals": goals(rows),
    }
    print()
    print(table(rows))
    for g in report["goals"]:
        print(goal_line(g))
    atomic_write_text(Path(args.json), json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    if args.markdown:
        atomic_write_text(Path(args.markdown), markdown(report))
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

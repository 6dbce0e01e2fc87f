"""fp32 vs fp16 vs int8 on this CPU: ONNX Runtime batch-1 latency (1 thread), action agreement and return.

Part 1, image policies (the speed goal: int8 p50 <= 0.6x fp32 with >= 99% argmax agreement):
Impala-CNN tau=1 dense and tau=3 pruned by groups to 0.8 with ``round_to=8`` (as in
``tools/bench_impala.py``; fresh weights: latency depends on shapes only), on 4x64x64 frames
recorded from ALE/Breakout-v5 by rolling each policy itself. Half the frames calibrate int8
(``edgerl.export.quantize.quantize_int8``), the other half are held out for the agreement.

Part 2, MLP policies (SAC actors) through ``edgerl.bench.precision.precision_bench``: every
checkpoint given with ``--sac LABEL=CKPT`` is exported at fp32/fp16/int8 (int8 calibrated on its
replay buffer), timed interleaved with the others of the same env, and rolled in its env for
``--episodes`` episodes on the same seeds; one return vs p99 plot per env
(``--plot PREFIX`` writes ``PREFIX_<env>.png``).

Usage::

    python tools/bench_precision.py --sac dense=runs/hc30k --sac compact=runs/hc30k-pruned \\
        --sac dense=runs/hop30k --markdown docs/benchmarks/precision.md --plot docs/benchmarks/precision
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from edgerl.bench.device import device_info
from edgerl.bench.image_precision import image_markdown, image_rows
from edgerl.bench.precision import (
    models_by_env,
    plot_return_vs_p99,
    precision_bench,
    precision_markdown,
    precision_page,
)
from edgerl.runtime.fileio import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sac", action="append", default=[], metavar="LABEL=CKPT",
                    help="SAC checkpoint (or run folder) to compare at fp32/fp16/int8; repeatable")
    ap.add_argument("--no-return", action="store_true", help="skip the return column (no env rollouts)")
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--frames", type=int, default=256, help="recorded frames to calibrate on (as many held out)")
    ap.add_argument("--no-image", action="store_true", help="skip the Impala part")
    ap.add_argument("--min-queries", type=int, default=300)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exporter", default="auto", choices=("auto", "dynamo", "legacy"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--plot", default=None, metavar="PREFIX", help="write PREFIX_<env>.png: return vs p99 latency")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    command = "python tools/bench_precision.py " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    timing = {"min_queries": args.min_queries, "min_seconds": args.min_seconds, "rounds": args.rounds,
              "warmup": args.warmup}
    out: dict[str, Any] = {"command": command, "device": device_info(1)}
    with tempfile.TemporaryDirectory(prefix="edgerl-bench-precision-") as tmp:
        if not args.no_image:
            log("image policies (ALE/Breakout-v5 frames, 4x64x64):")
            out["image"] = image_rows(Path(tmp), args.frames, args.seed, args.exporter, log, **timing)
            print(image_markdown(out["image"]))
        out["mlp"] = {}
        for env, pairs in models_by_env(args.sac).items():
            report = precision_bench(pairs, env=None if args.no_return else env, episodes=args.episodes,
                                     seed=args.seed, log=log, exporter=args.exporter, **timing)
            out["mlp"][env] = {"rows": report["precision"], "skipped": report["skipped"]}
            print(f"{env}:\n" + precision_markdown(report["precision"]))
            if args.plot and not args.no_return:
                png = f"{args.plot}_{env.replace('/', '_')}.png"
                plot_return_vs_p99(report["precision"], png, title=f"{env}: return vs p99 (ORT CPU, 1 thread, batch 1)")
                out["mlp"][env]["plot"] = png
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(out, indent=2, default=str) + "\n")
    if args.markdown:
        atomic_write_text(Path(args.markdown), precision_page(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``edgerl bench``: single-stream latency of compact policies against the dense baseline
(MLPerf manner: warm-up, enough queries, interleaved rounds, p50/p90/p99), with the device and
library versions in the same JSON, and the runtime's overhead over a bare ONNX Runtime session."""

from __future__ import annotations

import argparse
import json
import sys

from edgerl.errors import ConfigError


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(s) for s in _names(text)]
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers such as 1,32, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="checkpoint (ckpt.pt, compact.pt, run folder) or folder with policy.onnx + contract.json "
                        "(deploy bundle, export output)")
    p.add_argument("--baseline", metavar="DENSE", default=None,
                   help="the dense model to compare with (ratios are MODEL / DENSE per backend and batch)")
    p.add_argument("--backends", default="torch,ort-cpu,trt",
                   help="comma-separated: torch, ort-cpu, ort-cuda, trt, c (the generated C policy, built with "
                        "the system compiler); unavailable ones are skipped with the reason (default: %(default)s)")
    p.add_argument("--batch", default="1", help="comma-separated batch sizes (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of torch and ONNX Runtime (default: 1)")
    p.add_argument("--min-queries", type=int, default=1000,
                   help="timed calls per model, backend and batch, at least (default: %(default)s)")
    p.add_argument("--min-seconds", type=float, default=2.0,
                   help="timed seconds per model, backend and batch, at least (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=200, help="untimed calls before timing (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=10,
                   help="rounds the models are interleaved in, order alternating (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random observations (default: 0)")
    p.add_argument("--profile", default=None,
                   help="target profile for the runtime backends (precision, TensorRT settings); default fp32")
    p.add_argument("--exporter", choices=("auto", "dynamo", "legacy"), default="auto",
                   help="ONNX exporter used for checkpoints (default: auto)")
    p.add_argument("--no-overhead", action="store_true",
                   help="skip timing Policy.act() against a bare InferenceSession.run")
    p.add_argument("--json", metavar="FILE", default=None, help="write the report as JSON")
    p.add_argument("--markdown", metavar="FILE", nargs="?", const="-", default=None,
                   help="Markdown tables: to stdout instead of the plain table, or to FILE (put MODEL first)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--precisions", default=None, metavar="LIST",
                   help="compare fp32,fp16,int8 variants of each checkpoint MODEL in one interleaved run "
                        "(int8 calibrated on its replay buffer or a rollout); the first fp32 is the baseline")
    p.add_argument("--return", dest="return_env", default=None, metavar="ENV",
                   help="with --precisions: add each variant's episodic return on ENV (same seeds for all)")
    p.add_argument("--episodes", type=int, default=5, help="episodes per variant for --return (default: 5)")
    p.add_argument("--plot", default=None, metavar="PNG", help="with --precisions --return: return vs p99 plot")


def run(args: argparse.Namespace) -> int:
    from edgerl.bench.api import run_bench
    from edgerl.bench.report_format import format_markdown, format_table
    from edgerl.runtime.fileio import atomic_write_text

    def log(msg: str) -> None:
        if not args.quiet:
            print(f"edgerl bench: {msg}", file=sys.stderr, flush=True)

    from edgerl.outputs import check_output_path

    for flag, path in (("--json", args.json), ("--markdown", None if args.markdown == "-" else args.markdown)):
        if path:
            check_output_path(path, flag, inputs=tuple(args.models))
    if args.precisions:
        return _run_precisions(args, log)
    report = run_bench(args.models, args.baseline, _names(args.backends), _ints(args.batch, "--batch"), args.threads,
                       min_queries=args.min_queries, min_seconds=args.min_seconds, warmup=args.warmup,
                       rounds=args.rounds, seed=args.seed, overhead=not args.no_overhead, profile=args.profile,
                       exporter=args.exporter, log=log)
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    if args.markdown == "-":
        print(format_markdown(report), end="")
    else:
        print(format_table(report))
        if args.markdown:
            atomic_write_text(args.markdown, format_markdown(report))
    return 0


def _run_precisions(args: argparse.Namespace, log) -> int:
    """``--precisions``: every MODEL at every precision, interleaved, with returns on ``--return``."""
    from pathlib import Path

    from edgerl.bench.precision import (
        check_precisions,
        plot_return_vs_p99,
        precision_bench,
        precision_markdown,
    )
    from edgerl.bench.report_format import device_line
    from edgerl.runtime.fileio import atomic_write_text

    precisions = check_precisions(_names(args.precisions))
    pairs = [(Path(m).stem if Path(m).suffix else Path(m).name, m) for m in [*args.models, *filter(None, [args.baseline])]]
    report = precision_bench(pairs, precisions, _names(args.backends), env=args.return_env, episodes=args.episodes,
                             seed=args.seed, log=log, threads=args.threads, min_queries=args.min_queries,
                             min_seconds=args.min_seconds, warmup=args.warmup, rounds=args.rounds,
                             profile=args.profile)
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2, default=str) + "\n")
    print(device_line(report["device"]))
    print(precision_markdown(report["precision"]), end="")
    if args.plot and args.return_env:
        plot_return_vs_p99(report["precision"], args.plot, title=f"{args.return_env}: return vs p99")
    return 0

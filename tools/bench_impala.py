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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgerl.bench.device import device_info
from edgerl.bench.macs import count_macs, count_params
from edgerl.bench.runners import bare_ort_runner, time_interleaved
from edgerl.export.onnx_io import export_onnx
from edgerl.export.wrappers import ArgmaxPolicy
from edgerl.nets.impala import ActorCriticCNN, image_encoder_spec
from edgerl.prune.gradual import GradualPruner
from edgerl.prune.schedule import OneShotSchedule

REPO = Path(__file__).resolve().parent.parent
N_ACTIONS = 15
HIDDEN = [256]
GOAL_VS_DENSE3 = 0.1
DENSE1, DENSE3 = "dense tau=1", "dense tau=3"


@dataclass(frozen=True)
class Variant:
    """One model of the table."""

    label: str
    tau: int
    ratio: float = 0.0
    round_to: int | None = None


VARIANTS = (
    Variant(DENSE1, 1),
    Variant(DENSE3, 3),
    Variant("tau=3 groups 0.8", 3, 0.8),
    Variant("tau=3 groups 0.8 round_to=8", 3, 0.8, 8),
    Variant("tau=3 groups 0.9", 3, 0.9),
    Variant("tau=3 groups 0.9 round_to=8", 3, 0.9, 8),
)


def build(variant: Variant, shape: tuple[int, int, int], seed: int = 0) -> ActorCriticCNN:
    """A freshly initialised agent network, pruned by groups if the variant says so."""
    torch.manual_seed(seed)
    net = ActorCriticCNN(image_encoder_spec("impala", shape, variant.tau, HIDDEN), N_ACTIONS)
    if variant.ratio > 0:
        example = torch.zeros(2, *shape, dtype=torch.uint8)
        pruner = GradualPruner({"net": (net, (example,), net.heads())}, optimizers=[],
                               schedule=OneShotSchedule(variant.ratio, 1), round_to=variant.round_to)
        pruner.step(0)
    return net.eval()


def export(net: ActorCriticCNN, shape: tuple[int, int, int], path: Path, exporter: str) -> str:
    """Write the deployed policy (uint8 frames -> argmax action) to ``path``; returns the exporter used."""
    policy = ArgmaxPolicy(net)
    example = torch.zeros(2, *shape, dtype=torch.uint8)
    model, used, _ = export_onnx(policy, example, exporter=exporter)
    path.write_bytes(model.SerializeToString())
    return used


def check_parity(net: ActorCriticCNN, path: Path, frames: np.ndarray) -> float:
    """Fraction of frames on which ONNX Runtime's action differs from torch's (argmax ties only)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: frames})[0]
    with torch.no_grad():
        want = net.deterministic(torch.from_numpy(frames)).numpy()
    return float((got != want).mean())


def bench_shape(shape: tuple[int, int, int], args: argparse.Namespace, workdir: Path,
                log: Any = print) -> list[dict[str, Any]]:
    """Build, export, check and time every variant at one frame shape; one row per variant."""
    rng = np.random.default_rng(args.seed)
    frames = rng.integers(0, 256, size=(16, *shape), dtype=np.uint8)
    rows, runners = [], []
    for v in VARIANTS:
        t0 = time.perf_counter()
        net = build(v, shape, args.seed)
        example = torch.zeros(1, *shape, dtype=torch.uint8)
        path = workdir / f"{'x'.join(map(str, shape))}_{v.label.replace(' ', '_').replace('=', '')}.onnx"
        used = export(net, shape, path, args.exporter)
        mismatch = check_parity(net, path, frames)
        if mismatch > 0.1:
            raise SystemExit(f"{v.label}: ONNX Runtime's actions differ from torch's on {mismatch:.0%} of frames")
        spec = net.spec()["encoder"]["kwargs"]
        rows.append({"shape": list(shape), "model": v.label, "tau": v.tau, "ratio": v.ratio, "round_to": v.round_to,
                     "channels": [s[0] for s in spec["channels"]], "inner": [s[1:] for s in spec["channels"]],
                     "hidden": spec["hidden"], "params": count_params(net), "macs": count_macs(net, example),
                     "onnx_bytes": path.stat().st_size, "exporter": used, "action_mismatch": mismatch})
        runners.append(bare_ort_runner(path, 1, shape, np.dtype(np.uint8)))
        log(f"  {v.label:<28} channels {rows[-1]['channels']}, {rows[-1]['params'] / 1e6:.3f} M params, "
            f"{rows[-1]['macs'] / 1e6:.1f} M MACs ({time.perf_counter() - t0:.1f} s to build and export)")
    pool = rng.integers(0, 256, size=(64, *shape), dtype=np.uint8)
    log(f"  timing {len(runners)} models interleaved ({args.rounds} rounds, >= {args.min_queries} calls and "
        f">= {args.min_seconds} s each)")
    timing = {"min_queries": args.min_queries, "min_seconds": args.min_seconds, "rounds": args.rounds,
              "warmup": args.warmup}
    for r, t in zip(rows, time_interleaved(runners, pool, **timing), strict=True):
        r.update(t)
    base = {r["model"]: r for r in rows}
    for r in rows:
        for ref, key in ((DENSE3, "vs_dense3"), (DENSE1, "vs_dense1")):
            r[key] = {p: r[f"{p}_us"] / base[ref][f"{p}_us"] for p in ("p50", "p90", "p99")}
    return rows


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The goal for every tau = 3 model pruned at 0.8: p50 <= 0.1x dense tau=3 and <= dense tau=1."""
    out = []
    for r in rows:
        if r["tau"] == 3 and r["ratio"] == 0.8:
            out.append({"shape": r["shape"], "model": r["model"], "p50_vs_dense3": r["vs_dense3"]["p50"],
                        "p50_vs_dense1": r["vs_dense1"]["p50"],
                        "met": bool(r["vs_dense3"]["p50"] <= GOAL_VS_DENSE3 and r["vs_dense1"]["p50"] <= 1.0)})
    return out


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the rows of one or more shapes."""
    lines = ["| input | model | stream channels | params | MACs | p50 (us) | p90 (us) | p99 (us) "
             "| p50 / dense tau=3 | p50 / dense tau=1 |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {'x'.join(map(str, r['shape']))} | {r['model']} | {'/'.join(map(str, r['channels']))} "
            f"| {r['params'] / 1e6:.3f} M | {r['macs'] / 1e6:.1f} M | {r['p50_us']:.0f} | {r['p90_us']:.0f} "
            f"| {r['p99_us']:.0f} | {r['vs_dense3']['p50']:.3f} | {r['vs_dense1']['p50']:.2f} |")
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """The benchmark page: command, table, goal, device and settings."""
    dev, cfg = report["device"], report["config"]
    versions = ", ".join(f"{k} {v}" for k, v in dev.get("versions", {}).items())
    goal_lines = [f"- {'x'.join(map(str, g['shape']))}, {g['model']}: p50 {g['p50_vs_dense3']:.3f}x dense tau=3, "
                  f"{g['p50_vs_dense1']:.2f}x dense tau=1: {'met' if g['met'] else 'NOT met'}"
                  for g in report["goals"]]
    return "\n".join([
        "# Impala-CNN: dense vs pruned by groups, batch-1 CPU latency (ONNX Runtime)",
        "",
        "Generated by `tools/bench_impala.py`; regenerate with:",
        "",
        "```",
        report["command"],
        "```",
        "",
        "PPO agent network (`ActorCriticCNN`: Impala-CNN, Linear 256, 15 actions), deployed graph uint8 frames ->"
        " argmax action, freshly initialised (latency depends on shapes only). Pruned models: L1 group pruning"
        " through `GradualPruner` (residual streams pruned as one group, heads never pruned). Latency: bare"
        " `InferenceSession.run`, batch 1, intra-op 1 / inter-op 1 threads, sequential, ORT_ENABLE_ALL; all"
        " models interleaved in rounds of alternating order; percentiles over every timed call.",
        "",
        table(report["rows"]),
        "",
        f"Goal (tau=3 pruned at 0.8: p50 <= {GOAL_VS_DENSE3}x dense tau=3 and <= dense tau=1):",
        "",
        *goal_lines,
        "",
        f"Measured {dev['date']} on {dev['cpu_model']} ({dev['cpu_count']} logical CPUs, governor "
        f"{dev.get('cpu_governor')}), {dev['os']}, Python {dev['python']}; {versions}.",
        f"Timing: {cfg['rounds']} rounds, >= {cfg['min_queries']} calls and >= {cfg['min_seconds']} s per model, "
        f"{cfg['warmup']} warm-up calls; exporter {cfg['exporter']}. Load average (1, 5, 15 min) before "
        f"{report['load_average']['before']}, after {report['load_average']['after']}: on a shared machine"
        " the figures are noisy; ratios (interleaved) are steadier than absolute times, but contention"
        " stretches long calls (dense tau=3) more than short ones.",
        "",
    ])


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
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-impala-") as tmp:
        for shape in shapes:
            print(f"input {'x'.join(map(str, shape))}:", flush=True)
            rows += bench_shape(shape, args, Path(tmp), log=lambda s: print(s, flush=True))
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
        print(f"goal {'x'.join(map(str, g['shape']))} {g['model']}: {g['p50_vs_dense3']:.3f}x dense tau=3, "
              f"{g['p50_vs_dense1']:.2f}x dense tau=1 -> {'met' if g['met'] else 'NOT met'}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown(report))
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

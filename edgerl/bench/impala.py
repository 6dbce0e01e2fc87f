"""Impala-CNN agents dense and pruned by groups: parameters, MACs and batch-1 CPU latency in ONNX
Runtime (``tools/bench_impala.py``; ``tools/bench_precision.py`` reuses its models).

Models (``ActorCriticCNN``, hidden 256, 15 actions as in Procgen; the deployed graph is uint8
frames -> scale -> Impala-CNN -> logits -> argmax): dense tau = 1, dense tau = 3, and tau = 3
pruned by groups (L1, :func:`edgerl.prune.prune_once`) to channel ratios 0.8 and 0.9, each without
and with ``round_to=8``. Weights are a fresh initialisation: latency depends on shapes only. Each
model is exported with edgerl's exporter (``ArgmaxPolicy`` + ``export_onnx``), checked against
torch on random frames, then timed as single-stream batch-1 calls of a bare ``InferenceSession.run``
(1 intra-op and 1 inter-op thread), all models interleaved in rounds.

The goal: tau = 3 pruned at 0.8 runs at most 0.1x the dense tau = 3 latency (p50) and no slower
than dense tau = 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgerl.bench.macs import count_macs, count_params
from edgerl.bench.runners import bare_ort_runner, time_interleaved
from edgerl.bench.shapes import IMPALA_HIDDEN, N_ACTIONS
from edgerl.export.checks import ort_session
from edgerl.export.errors import ExportCheckError
from edgerl.export.observations import torch_actions
from edgerl.export.onnx_io import export_onnx
from edgerl.export.wrappers import ArgmaxPolicy
from edgerl.nets.impala import ActorCriticCNN, image_encoder_spec
from edgerl.prune.gradual import prune_once

GOAL_VS_DENSE3 = 0.1
DENSE1, DENSE3 = "dense tau=1", "dense tau=3"
MAX_MISMATCH = 0.1
"""Largest fraction of frames on which ONNX Runtime's action may differ from torch's (argmax ties)."""


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
    net = ActorCriticCNN(image_encoder_spec("impala", shape, variant.tau, IMPALA_HIDDEN), N_ACTIONS)
    if variant.ratio > 0:
        prune_once(net, (torch.zeros(2, *shape, dtype=torch.uint8),), variant.ratio, variant.round_to)
    return net.eval()


def export(net: ActorCriticCNN, shape: tuple[int, int, int], path: Path, exporter: str) -> str:
    """Write the deployed policy (uint8 frames -> argmax action) to ``path``; returns the exporter used."""
    example = torch.zeros(2, *shape, dtype=torch.uint8)
    model, used, _ = export_onnx(ArgmaxPolicy(net), example, exporter=exporter)
    path.write_bytes(model.SerializeToString())
    return used


def check_parity(net: ActorCriticCNN, path: Path, frames: np.ndarray) -> float:
    """Fraction of frames on which ONNX Runtime's action differs from torch's (argmax ties only)."""
    sess = ort_session(path.read_bytes())
    got = sess.run(None, {sess.get_inputs()[0].name: frames})[0]
    return float((got != torch_actions(ArgmaxPolicy(net), frames, np.dtype(np.uint8))).mean())


def _row(v: Variant, shape: tuple[int, int, int], net: ActorCriticCNN, path: Path, used: str,
         mismatch: float) -> dict[str, Any]:
    spec = net.spec()["encoder"]["kwargs"]
    example = torch.zeros(1, *shape, dtype=torch.uint8)
    return {"shape": list(shape), "model": v.label, "tau": v.tau, "ratio": v.ratio, "round_to": v.round_to,
            "channels": [s[0] for s in spec["channels"]], "inner": [s[1:] for s in spec["channels"]],
            "hidden": spec["hidden"], "params": count_params(net), "macs": count_macs(net, example),
            "onnx_bytes": path.stat().st_size, "exporter": used, "action_mismatch": mismatch}


def bench_shape(shape: tuple[int, int, int], workdir: Path, timing: dict[str, Any], seed: int = 0,
                exporter: str = "auto", log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Build, export, check and time every variant at one frame shape; one row per variant.

    Args:
        timing: :func:`edgerl.bench.runners.time_interleaved` keywords (min_queries, min_seconds,
            rounds, warmup).

    Raises:
        ExportCheckError: ONNX Runtime's actions differ from torch's on more than :data:`MAX_MISMATCH` of
            the frames.
    """
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(16, *shape), dtype=np.uint8)
    rows, runners = [], []
    for v in VARIANTS:
        t0 = time.perf_counter()
        net = build(v, shape, seed)
        path = workdir / f"{'x'.join(map(str, shape))}_{v.label.replace(' ', '_').replace('=', '')}.onnx"
        used = export(net, shape, path, exporter)
        mismatch = check_parity(net, path, frames)
        if not (mismatch <= MAX_MISMATCH):  # NaN (no frames compared) fails too
            raise ExportCheckError(f"{v.label}: ONNX Runtime's actions differ from torch's on {mismatch:.0%} of frames")
        rows.append(_row(v, shape, net, path, used, mismatch))
        runners.append(bare_ort_runner(path, 1, shape, np.dtype(np.uint8)))
        log(f"  {v.label:<28} channels {rows[-1]['channels']}, {rows[-1]['params'] / 1e6:.3f} M params, "
            f"{rows[-1]['macs'] / 1e6:.1f} M MACs ({time.perf_counter() - t0:.1f} s to build and export)")
    pool = rng.integers(0, 256, size=(64, *shape), dtype=np.uint8)
    log(f"  timing {len(runners)} models interleaved ({timing['rounds']} rounds, >= {timing['min_queries']} calls "
        f"and >= {timing['min_seconds']} s each)")
    for r, t in zip(rows, time_interleaved(runners, pool, **timing), strict=True):
        r.update(t)
    add_ratios(rows)
    return rows


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's p50/p90/p99 over dense tau=3's and dense tau=1's (``vs_dense3``, ``vs_dense1``)."""
    base = {r["model"]: r for r in rows}
    for r in rows:
        for ref, key in ((DENSE3, "vs_dense3"), (DENSE1, "vs_dense1")):
            r[key] = {p: r[f"{p}_us"] / base[ref][f"{p}_us"] for p in ("p50", "p90", "p99")}


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


def goal_line(g: dict[str, Any]) -> str:
    """One goal of :func:`goals` as a line of the console output."""
    return (f"goal {'x'.join(map(str, g['shape']))} {g['model']}: {g['p50_vs_dense3']:.3f}x dense tau=3, "
            f"{g['p50_vs_dense1']:.2f}x dense tau=1 -> {'met' if g['met'] else 'NOT met'}")


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

"""fp32 / fp16 / int8 image policies on this CPU: the fresh Impala-CNN models of
:mod:`edgerl.bench.impala` (latency depends on shapes only), exported at each precision, int8
calibrated on half of the frames met by rolling each policy itself on ALE/Breakout-v5 and its
argmax agreement with fp32 measured on the other half; all variants timed interleaved (ONNX
Runtime, batch 1, 1 thread). The speed goal: int8 p50 <= 0.6x fp32 with >= 99% argmax agreement.
Checkpoint (MLP) policies are benchmarked by :mod:`edgerl.bench.precision`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgerl.bench.precision import Log

IMAGE_SHAPE = (4, 64, 64)
"""Frames: 4 stacked 64x64 grey frames."""
GOAL_RATIO, GOAL_AGREEMENT = 0.6, 0.99
"""The goal: int8 p50 at most this fraction of fp32's, with at least this argmax agreement."""


def record_frames(net: Any, n: int, seed: int) -> np.ndarray:
    """``n`` preprocessed Breakout observations met by rolling ``net``'s own argmax (eps 0.1)."""
    import torch

    from edgerl.algos.atari import ImageEnvConfig, make_image_env
    from edgerl.export.wrappers import ArgmaxPolicy

    env = make_image_env("ALE/Breakout-v5", ImageEnvConfig(frame_size=IMAGE_SHAPE[1], frame_stack=IMAGE_SHAPE[0]),
                         train=False)
    rng = np.random.default_rng(seed)
    out = np.empty((n, *IMAGE_SHAPE), np.uint8)
    obs, _ = env.reset(seed=seed)
    policy = ArgmaxPolicy(net)
    try:
        for i in range(n):
            out[i] = obs
            with torch.no_grad():
                a = int(policy(torch.from_numpy(np.asarray(obs)[None]))[0]) % env.action_space.n
            if rng.random() < 0.1:
                a = int(rng.integers(env.action_space.n))
            obs, _, term, trunc, _ = env.step(a)
            if term or trunc:
                obs, _ = env.reset()
    finally:
        env.close()
    return out


def image_rows(workdir: Path, frames: int = 256, seed: int = 0, exporter: str = "auto", log: Log = print,
               **timing: Any) -> list[dict[str, Any]]:
    """Latency of fp32/fp16/int8 Impala policies, all interleaved, plus int8 argmax agreement.

    Args:
        frames: recorded frames to calibrate int8 on (as many held out for the agreement).
        timing: :func:`edgerl.bench.runners.time_interleaved` keywords (min_queries, min_seconds,
            rounds, warmup).
    """
    import torch

    from edgerl.bench.impala import Variant, build
    from edgerl.bench.runners import bare_ort_runner, time_interleaved
    from edgerl.export.checks import ort_session
    from edgerl.export.onnx_io import export_onnx
    from edgerl.export.quantize import quantize_int8
    from edgerl.export.wrappers import ArgmaxPolicy

    variants = [Variant("impala tau=1 dense", 1), Variant("impala tau=3 groups 0.8 round_to=8", 3, 0.8, 8)]
    rows, runners = [], []
    for v in variants:
        net = build(v, IMAGE_SHAPE, seed)
        recorded = record_frames(net, 2 * frames, seed)
        calib, held = recorded[::2], recorded[1::2]
        policy = ArgmaxPolicy(net)
        example = torch.zeros(2, *IMAGE_SHAPE, dtype=torch.uint8)
        fp32, _, _ = export_onnx(policy, example, exporter=exporter)
        fp16, _, _ = export_onnx(policy.to_fp16(), example, exporter=exporter)
        int8, _ = quantize_int8(fp32, calib)
        want = ort_session(fp32.SerializeToString()).run(None, {"obs": held})[0]
        for precision, model in (("fp32", fp32), ("fp16", fp16), ("int8", int8)):
            path = workdir / f"{v.label.replace(' ', '_')}_{precision}.onnx"
            path.write_bytes(model.SerializeToString())
            got = ort_session(path.read_bytes()).run(None, {"obs": held})[0]
            rows.append({"model": v.label, "precision": precision, "onnx_bytes": path.stat().st_size,
                         "agreement": float(np.mean(got == want)), "n_held_out": len(held)})
            runners.append(bare_ort_runner(path, 1, IMAGE_SHAPE, np.dtype(np.uint8)))
            log(f"  {v.label} {precision}: {path.stat().st_size / 1024:.0f} KiB, argmax agreement with fp32 "
                f"{rows[-1]['agreement']:.2%} on {len(held)} held-out recorded frames")
    pool = record_frames(build(variants[0], IMAGE_SHAPE, seed + 1), 64, seed + 1)
    log(f"  timing {len(runners)} image models interleaved ({timing.get('rounds')} rounds)")
    for r, t in zip(rows, time_interleaved(runners, pool, **timing), strict=True):
        r.update(t)
    image_goals(rows)
    return rows


def image_goals(rows: list[dict[str, Any]]) -> None:
    """Add each row's p50/p99 over its model's fp32 row, and to int8 rows whether the goal is met."""
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["precision"] == "fp32")
        r["p50_vs_fp32"] = r["p50_us"] / base["p50_us"]
        r["p99_vs_fp32"] = r["p99_us"] / base["p99_us"]
        if r["precision"] == "int8":
            r["goal_met"] = bool(r["p50_vs_fp32"] <= GOAL_RATIO and r["agreement"] >= GOAL_AGREEMENT)


def image_markdown(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`image_rows`."""
    lines = ["| policy | precision | p50 us | p90 us | p99 us | p50 vs fp32 | size KiB | argmax agreement | goal |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        goal = "" if "goal_met" not in r else ("met" if r["goal_met"] else "MISSED")
        lines.append(f"| {r['model']} | {r['precision']} | {r['p50_us']:.0f} | {r['p90_us']:.0f} | {r['p99_us']:.0f} | "
                     f"{r['p50_vs_fp32']:.2f} | {r['onnx_bytes'] / 1024:.0f} | {r['agreement']:.2%} | {goal} |")
    return "\n".join(lines) + "\n"

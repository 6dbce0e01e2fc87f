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
import importlib.util
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgerl.bench.device import device_info
from edgerl.bench.precision import plot_return_vs_p99, precision_bench, precision_markdown
from edgerl.bench.report import device_line
from edgerl.bench.runners import bare_ort_runner, time_interleaved
from edgerl.export.onnx_io import export_onnx
from edgerl.export.quantize import quantize_int8
from edgerl.export.wrappers import ArgmaxPolicy

REPO = Path(__file__).resolve().parent.parent
SHAPE = (4, 64, 64)
GOAL_RATIO, GOAL_AGREEMENT = 0.6, 0.99


def _bench_impala() -> Any:
    spec = importlib.util.spec_from_file_location("bench_impala", REPO / "tools" / "bench_impala.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_impala"] = mod
    spec.loader.exec_module(mod)
    return mod


def record_frames(net: torch.nn.Module, n: int, seed: int) -> np.ndarray:
    """``n`` preprocessed Breakout observations met by rolling ``net``'s own argmax (eps 0.1)."""
    from edgerl.algos.atari import ImageEnvConfig, make_image_env

    env = make_image_env("ALE/Breakout-v5", ImageEnvConfig(frame_size=SHAPE[1], frame_stack=SHAPE[0]), train=False)
    rng = np.random.default_rng(seed)
    out = np.empty((n, *SHAPE), np.uint8)
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


def image_rows(args: argparse.Namespace, workdir: Path, log: Any) -> list[dict[str, Any]]:
    """Latency of fp32/fp16/int8 Impala policies, all interleaved, plus int8 argmax agreement."""
    import onnx
    import onnxruntime as ort

    bi = _bench_impala()
    variants = [bi.Variant("impala tau=1 dense", 1), bi.Variant("impala tau=3 groups 0.8 round_to=8", 3, 0.8, 8)]
    rows, runners = [], []
    for v in variants:
        net = bi.build(v, SHAPE, args.seed)
        frames = record_frames(net, 2 * args.frames, args.seed)
        calib, held = frames[::2], frames[1::2]
        policy = ArgmaxPolicy(net)
        example = torch.zeros(2, *SHAPE, dtype=torch.uint8)
        fp32, _, _ = export_onnx(policy, example, exporter=args.exporter)
        fp16, _, _ = export_onnx(policy.to_fp16(), example, exporter=args.exporter)
        int8, _ = quantize_int8(fp32, calib)
        ref = ort.InferenceSession(fp32.SerializeToString(), providers=["CPUExecutionProvider"])
        want = ref.run(None, {"obs": held})[0]
        for precision, model in (("fp32", fp32), ("fp16", fp16), ("int8", int8)):
            path = workdir / f"{v.label.replace(' ', '_')}_{precision}.onnx"
            onnx.save(model, os.fspath(path))
            sess = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
            got = sess.run(None, {"obs": held})[0]
            rows.append({"model": v.label, "precision": precision, "onnx_bytes": path.stat().st_size,
                         "agreement": float(np.mean(got == want)), "n_held_out": len(held)})
            runners.append(bare_ort_runner(path, 1, SHAPE, np.dtype(np.uint8)))
            log(f"  {v.label} {precision}: {path.stat().st_size / 1024:.0f} KiB, argmax agreement with fp32 "
                f"{rows[-1]['agreement']:.2%} on {len(held)} held-out recorded frames")
    pool = record_frames(bi.build(variants[0], SHAPE, args.seed + 1), 64, args.seed + 1)
    log(f"  timing {len(runners)} image models interleaved ({args.rounds} rounds)")
    timing = {"min_queries": args.min_queries, "min_seconds": args.min_seconds, "rounds": args.rounds,
              "warmup": args.warmup}
    for r, t in zip(rows, time_interleaved(runners, pool, **timing), strict=True):
        r.update(t)
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["precision"] == "fp32")
        r["p50_vs_fp32"] = r["p50_us"] / base["p50_us"]
        r["p99_vs_fp32"] = r["p99_us"] / base["p99_us"]
        if r["precision"] == "int8":
            r["goal_met"] = bool(r["p50_vs_fp32"] <= GOAL_RATIO and r["agreement"] >= GOAL_AGREEMENT)
    return rows


def image_markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| policy | precision | p50 us | p90 us | p99 us | p50 vs fp32 | size KiB | argmax agreement | goal |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        goal = "" if "goal_met" not in r else ("met" if r["goal_met"] else "MISSED")
        lines.append(f"| {r['model']} | {r['precision']} | {r['p50_us']:.0f} | {r['p90_us']:.0f} | {r['p99_us']:.0f} | "
                     f"{r['p50_vs_fp32']:.2f} | {r['onnx_bytes'] / 1024:.0f} | {r['agreement']:.2%} | {goal} |")
    return "\n".join(lines) + "\n"


def _by_env(specs: list[str]) -> dict[str, list[tuple[str, str]]]:
    """``LABEL=CKPT`` entries grouped by the env their checkpoint was trained on."""
    from edgerl.checkpoint import load_checkpoint

    groups: dict[str, list[tuple[str, str]]] = {}
    for spec in specs:
        label, path = spec.split("=", 1) if "=" in spec else (Path(spec).name, spec)
        ckpt = Path(path) / "ckpt.pt" if Path(path).is_dir() else Path(path)
        groups.setdefault(load_checkpoint(ckpt)["env"]["id"], []).append((label, path))
    return groups


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
    command = "python tools/bench_precision.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    out: dict[str, Any] = {"command": command, "device": device_info(1)}
    with tempfile.TemporaryDirectory(prefix="edgerl-bench-precision-") as tmp:
        if not args.no_image:
            log("image policies (ALE/Breakout-v5 frames, 4x64x64):")
            out["image"] = image_rows(args, Path(tmp), log)
            print(image_markdown(out["image"]))
        out["mlp"] = {}
        for env, pairs in _by_env(args.sac).items():
            report = precision_bench(pairs, env=None if args.no_return else env, episodes=args.episodes,
                                     seed=args.seed, min_queries=args.min_queries, min_seconds=args.min_seconds,
                                     warmup=args.warmup, rounds=args.rounds, log=log, exporter=args.exporter)
            out["mlp"][env] = {"rows": report["precision"], "skipped": report["skipped"]}
            print(f"{env}:\n" + precision_markdown(report["precision"]))
            if args.plot and not args.no_return:
                png = f"{args.plot}_{env.replace('/', '_')}.png"
                plot_return_vs_p99(report["precision"], png, title=f"{env}: return vs p99 (ORT CPU, 1 thread, batch 1)")
                out["mlp"][env]["plot"] = png
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
    if args.markdown:
        text = [f"`{command}`", "", f"Device: {device_line(out['device'])}", ""]
        if "image" in out:
            text += ["## Image policies (Impala-CNN, batch 1, 1 thread, ORT CPU)", "", image_markdown(out["image"])]
        for env, res in out.get("mlp", {}).items():
            text += [f"## MLP policies (SAC actors), {env}", "", precision_markdown(res["rows"])]
            if "plot" in res:
                text += [f"![return vs p99, {env}]({Path(res['plot']).name})", ""]
        Path(args.markdown).write_text("\n".join(text) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

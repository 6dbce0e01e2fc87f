#!/usr/bin/env python
"""``make demo``: the whole pipeline on the embedded default (Hopper-v5, CPU, no downloads).

1. trains, in parallel 1-thread processes, a dense SAC (256,256) and a scaled-up SAC (512,512)
   that is pruned by groups to a final channel ratio of 0.8 while it learns;
2. compacts the pruned agent and deploys both to the ``x86-cpu`` profile;
3. runs the compact bundle through the torch-free runtime (return next to the torch policy's);
4. benchmarks compact vs dense (params, MACs, p50/p99 latency on torch and ONNX Runtime);
5. prints one table.

    .venv/bin/python tools/demo.py [--steps 15000] [--out demo_out]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "edgerl.cli"]


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def edgerl(*args: str) -> None:
    print("$ edgerl " + " ".join(args), flush=True)
    subprocess.run([*CLI, *args], check=True, cwd=REPO)


def train_parallel(jobs: dict[str, list[str]]) -> None:
    """Run several ``edgerl train`` commands at once, relaying their progress lines with a prefix."""
    procs = {}
    for name, args in jobs.items():
        print(f"$ edgerl {' '.join(args)}", flush=True)
        procs[name] = subprocess.Popen([*CLI, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, bufsize=1)

    def relay(name: str, proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            print(f"[{name}] {line.rstrip()}", flush=True)

    threads = [threading.Thread(target=relay, args=item, daemon=True) for item in procs.items()]
    for t in threads:
        t.start()
    failed = [n for n, p in procs.items() if p.wait() != 0]
    for t in threads:
        t.join()
    if failed:
        sys.exit(f"demo: training {failed} failed (see the lines above)")


def final_return(run_dir: Path) -> float:
    import torch

    return float(torch.load(run_dir / "ckpt.pt", weights_only=True)["eval"]["return_mean"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="demo_out")
    p.add_argument("--steps", type=int, default=15_000)
    p.add_argument("--env", default="Hopper-v5")
    args = p.parse_args()
    out = (REPO / args.out).resolve()
    t0 = time.monotonic()
    common = ["train", "--env", args.env, "--total-steps", str(args.steps), "--learning-starts", "2000",
              "--eval-every", str(max(args.steps // 4, 1)), "--eval-episodes", "5", "--checkpoint-every", "0",
              "--threads", "1", "--progress", "false", "--seed", "1"]
    banner(f"1/5 train on {args.env}: dense 256x256 and scaled 512x512 pruned to ratio 0.8 (parallel)")
    train_parallel({
        "dense": [*common, "--hidden", "256,256", "--out", str(out / "dense")],
        "pruned": [*common, "--hidden", "512,512", "--prune", "gradual", "--final-ratio", "0.8",
                   "--prune-start", "0.2", "--prune-end", "0.8", "--prune-every", "200", "--out", str(out / "pruned")],
    })

    banner("2/5 compact the pruned agent; deploy both to the x86-cpu profile")
    edgerl("compact", str(out / "pruned"), "--json", str(out / "compact.json"))
    edgerl("deploy", str(out / "pruned" / "compact.pt"), "--target", "x86-cpu", "-o", str(out / "bundle"), "--force")
    edgerl("deploy", str(out / "dense"), "--target", "x86-cpu", "-o", str(out / "bundle-dense"), "--force")

    banner("3/5 run the compact bundle through the on-robot runtime (no torch on that path)")
    edgerl("run", str(out / "bundle"), "--episodes", "3", "--json", str(out / "run.json"))

    banner("4/5 benchmark compact vs dense (single-stream, interleaved, batch 1)")
    edgerl("bench", str(out / "pruned" / "compact.pt"), "--baseline", str(out / "dense"),
           "--backends", "torch,ort-cpu", "--batch", "1", "--min-queries", "2000", "--min-seconds", "3",
           "--json", str(out / "bench.json"))

    banner("5/5 summary")
    bench = json.loads((out / "bench.json").read_text())
    run = json.loads((out / "run.json").read_text())
    rows = {r["model"]: {} for r in bench["results"]}
    for r in bench["results"]:
        rows[r["model"]][r["backend"]] = r
        rows[r["model"]]["params"], rows[r["model"]]["macs"] = r["params"], r["macs"]
    models = list(rows)
    dense_key = next(m for m in models if "dense" in m)
    compact_key = next(m for m in models if m != dense_key)
    returns = {dense_key: final_return(out / "dense"), compact_key: final_return(out / "pruned")}
    print(f"{'':10s} {'return':>8s} {'params':>9s} {'MACs':>9s} {'torch p50/p99 us':>18s} {'ORT p50/p99 us':>16s}")
    for label, key in (("dense", dense_key), ("compact", compact_key)):
        r = rows[key]
        lat = "  ".join(f"{r[b]['p50_us']:7.1f}/{r[b]['p99_us']:<7.1f}" if b in r else f"{'-':>15s}"
                        for b in ("torch", "ort-cpu"))
        print(f"{label:10s} {returns[key]:8.1f} {r['params']:9,d} {r['macs']:9,d}  {lat}")
    for ratio in bench["ratios"]:
        print(f"compact/dense on {ratio['backend']} (batch {ratio['batch']}): p50 x{ratio['p50']:.2f}, p99 x{ratio['p99']:.2f}")
    rt = run["runtime_returns"]
    print(f"runtime ({run['backend']}) return {sum(rt) / len(rt):.1f} over {len(rt)} episodes; torch policy "
          f"{sum(run.get('torch_returns', [float('nan')])) / max(len(run.get('torch_returns', [])), 1):.1f} on the same seeds")
    print(f"demo finished in {(time.monotonic() - t0) / 60:.1f} min; artifacts in {out}")


if __name__ == "__main__":
    main()

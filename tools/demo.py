#!/usr/bin/env python
"""``make demo``: the whole pipeline on the embedded default (Hopper-v5, CPU, no downloads).

1. trains, in parallel 1-thread processes, a dense SAC (256,256) and a SAC whose 512x512 actor is
   pruned by groups to a final channel ratio of 0.8 while it learns, beside 256x256 critics (only
   the actor is pruned: critics are never deployed; 512-wide critics would double the demo's time);
2. distils the dense policy into a 32x32 student (replay buffer + DAgger rounds);
3. compacts the pruned agent and deploys the student and the dense policy to ``x86-cpu``;
4. runs the student's bundle through the torch-free runtime (return next to the torch policy's);
5. benchmarks student and pruned vs dense (params, MACs, p50/p99 latency on torch and ONNX Runtime);
6. prints one table, every return measured on the same env seeds.

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


DEMO_ENTRIES = {"dense", "pruned", "distilled", "bundle", "bundle-dense", "compact.json", "distill.json",
                "bench.json", "run.json"}
"""What a demo writes in its ``--out``: a folder holding only these is an earlier demo's, replaced."""


def fresh_out(out: Path) -> None:
    """Start the demo over in ``out``: an earlier demo's folder is deleted, anything else refused
    (the demo never deletes what it did not write)."""
    import shutil

    if not out.exists():
        return
    if not out.is_dir() or any(p.name not in DEMO_ENTRIES for p in out.iterdir()):
        sys.exit(f"demo: --out {out} holds files an edgerl demo does not write; choose another --out or move them")
    print(f"demo: replacing the earlier demo in {out}", flush=True)
    shutil.rmtree(out)


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


def same_seed_returns(paths: dict[str, Path], episodes: int, seed: int) -> dict[str, dict[str, float]]:
    """Mean and 95% interval of each checkpoint's deployed policy over the same env seeds."""
    from edgerl.bench.returns import episode_returns, mean_ci95
    from edgerl.checkpoint import load_checkpoint
    from edgerl.export import policy_from_checkpoint

    out = {}
    for name, path in paths.items():
        ckpt = load_checkpoint(path)
        out[name] = mean_ci95(episode_returns(policy_from_checkpoint(ckpt), ckpt, episodes, seed))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="demo_out")
    p.add_argument("--steps", type=int, default=15_000)
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--widths", default="32,32", help="the distilled student's hidden widths")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes (env seeds 10000..)")
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    out = (REPO / args.out).resolve()
    fresh_out(out)
    t0 = time.monotonic()
    common = ["train", "--env", args.env, "--total-steps", str(args.steps), "--learning-starts", "2000",
              "--eval-every", str(max(args.steps // 4, 1)), "--eval-episodes", "5", "--checkpoint-every", "0",
              "--threads", "1", "--progress", "false", "--seed", "1"]
    banner(f"1/6 train on {args.env}: dense 256x256, and a 512x512 actor pruned to ratio 0.8 beside 256x256 critics (parallel)")
    train_parallel({
        "dense": [*common, "--hidden", "256,256", "--out", str(out / "dense")],
        "pruned": [*common, "--hidden", "256,256", "--actor-hidden", "512,512", "--prune", "gradual", "--final-ratio", "0.8",
                   "--prune-nets", "actor",
                   "--prune-start", "0.2", "--prune-end", "0.8", "--prune-every", "200", "--out", str(out / "pruned")],
    })

    banner(f"2/6 distil the dense policy into a {args.widths} student (replay buffer, then DAgger rounds)")
    student = out / "distilled" / "student.pt"
    edgerl("distill", str(out / "dense"), "-o", str(student), "--widths", args.widths, "--rounds", "3",
           "--steps-per-round", "1500", "--round-states", "3000", "--eval-episodes", "0", "--progress", "false",
           "--json", str(out / "distill.json"))

    banner("3/6 compact the pruned agent; deploy the student and the dense policy to the x86-cpu profile")
    edgerl("compact", str(out / "pruned"), "--json", str(out / "compact.json"))
    edgerl("deploy", str(student), "--target", "x86-cpu", "-o", str(out / "bundle"), "--force")
    edgerl("deploy", str(out / "dense"), "--target", "x86-cpu", "-o", str(out / "bundle-dense"), "--force")

    banner("4/6 run the student's bundle through the on-robot runtime (no torch on that path)")
    edgerl("run", str(out / "bundle"), "--episodes", "3", "--json", str(out / "run.json"))

    banner("5/6 benchmark student and pruned vs dense (single-stream, interleaved, batch 1)")
    edgerl("bench", str(student), str(out / "pruned" / "compact.pt"), "--baseline", str(out / "dense"),
           "--backends", "torch,ort-cpu", "--batch", "1", "--min-queries", "2000", "--min-seconds", "2", "--no-overhead",
           "--json", str(out / "bench.json"))

    banner(f"6/6 summary (returns: {args.episodes} episodes, the same env seeds for every policy)")
    paths = {"dense": out / "dense" / "ckpt.pt", "pruned": out / "pruned" / "compact.pt", "distilled": student}
    returns = same_seed_returns(paths, args.episodes, 10_000)
    bench = json.loads((out / "bench.json").read_text())
    run = json.loads((out / "run.json").read_text())
    label = {Path(m["path"]).resolve(): m["label"] for m in bench["models"]}
    rows: dict[str, dict] = {}
    for r in bench["results"]:
        rows.setdefault(r["model"], {"params": r["params"], "macs": r["macs"]})[r["backend"]] = r
    dense_mean = returns["dense"]["mean"]
    print(f"{'':10s} {'return [95% interval]':>24s} {'% dense':>8s} {'params':>9s} {'MACs':>9s} "
          f"{'torch p50/p99 us':>18s} {'ORT p50/p99 us':>16s}")
    for name, path in paths.items():
        key = label.get(path.resolve()) or label.get(path.parent.resolve())
        r = rows.get(key, {})
        ret = returns[name]
        lat = "  ".join(f"{r[b]['p50_us']:7.1f}/{r[b]['p99_us']:<7.1f}" if b in r else f"{'-':>15s}"
                        for b in ("torch", "ort-cpu"))
        pct = 100 * ret["mean"] / dense_mean if dense_mean > 0 else float("nan")
        interval = f"{ret['mean']:.1f} [{ret['lo']:.0f}, {ret['hi']:.0f}]"
        print(f"{name:10s} {interval:>24s} {pct:7.0f}% {r.get('params', 0):9,d} {r.get('macs', 0):9,d}  {lat}")
    for ratio in bench["ratios"]:
        print(f"{ratio['model']}/dense on {ratio['backend']} (batch {ratio['batch']}): p50 x{ratio['p50']:.2f}, "
              f"p99 x{ratio['p99']:.2f}")
    rt = run["runtime_returns"]
    print(f"student bundle on the runtime ({run['backend']}): return {sum(rt) / len(rt):.1f} over {len(rt)} episodes; "
          f"torch policy {sum(run.get('torch_returns', [float('nan')])) / max(len(run.get('torch_returns', [])), 1):.1f} "
          "on the same seeds")
    print(f"demo finished in {(time.monotonic() - t0) / 60:.1f} min; artifacts in {out}")


if __name__ == "__main__":
    main()

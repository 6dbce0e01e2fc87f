#!/usr/bin/env python
"""The comparison the pruning papers make, on MuJoCo with SAC: dense, gradual group pruning of a
scaled-up network at several final ratios, unstructured masked pruning, and a small network
trained from scratch at the final widths of gradual pruning at 0.8.

    .venv/bin/python tools/compare_pruning.py --envs Hopper-v5,HalfCheetah-v5 --steps 100000 \
        --seeds 1,2,3 --jobs 2 --out runs/compare

Seeds run as parallel 1-thread processes (``--jobs``). Writes ``results.json`` and
``results.md`` (mean +- std over seeds of the final evaluation return, params and MACs of the
deployed actor, training wall-clock) into ``--out``; re-running skips finished runs.

The same runs as a sweep (mean and 95% bootstrap interval per variant; resumes after a kill):
``edgerl sweep profiles/sweeps/compare_pruning.yaml``. This tool stays for the tables that
``tools/make_reports.py`` reads (its ``results.json`` with params and MACs per run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def variants(args) -> dict[str, list[str]]:
    from edgerl.prune.gradual import target_width

    scaled = [int(x) for x in args.scaled.split(",")]
    small = [target_width(w, 0.8, args.round_to if args.round_to > 1 else None) for w in scaled]
    common_prune = ["--prune-start", "0.2", "--prune-end", "0.8", "--prune-every", str(args.prune_every),
                    "--round-to", str(args.round_to)]
    out = {"dense": ["--hidden", args.dense]}
    for r in args.ratios.split(","):
        out[f"gradual-{r}"] = ["--hidden", args.scaled, "--prune", "gradual", "--final-ratio", r, *common_prune]
    out["unstructured-0.8"] = ["--hidden", args.scaled, "--prune", "unstructured", "--final-ratio", "0.8", *common_prune]
    out[f"scratch-{'x'.join(map(str, small))}"] = ["--hidden", ",".join(map(str, small))]
    return out


def run_one(out: Path, env: str, seed: int, extra: list[str], args) -> Path:
    ckpt = out / "ckpt.pt"
    if ckpt.exists():
        import torch

        if torch.load(ckpt, weights_only=True)["counters"]["global_step"] >= args.steps:
            return out
    cmd = [sys.executable, "-m", "edgerl.cli", "train", "--env", env, "--seed", str(seed),
           "--total-steps", str(args.steps), "--threads", "1", "--progress", "false",
           "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
           "--out", str(out), *extra]
    if args.learning_starts is not None:
        cmd += ["--learning-starts", str(args.learning_starts)]
    if (out / "ckpt.pt").exists():
        cmd = [sys.executable, "-m", "edgerl.cli", "train", "--resume", str(out), "--progress", "false"]
    out.mkdir(parents=True, exist_ok=True)
    env_vars = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(out / "train.log", "a") as log:
        print(f"[{time.strftime('%H:%M:%S')}] start {out}", flush=True)
        subprocess.run(cmd, cwd=REPO, env=env_vars, stdout=log, stderr=subprocess.STDOUT, check=True)
        print(f"[{time.strftime('%H:%M:%S')}] done  {out}", flush=True)
    return out


def summarize(run_dir: Path) -> dict:
    import csv

    import torch

    from edgerl.algos.sac import SACAgent, SACConfig
    from edgerl.bench.macs import count_macs, count_params
    from edgerl.checkpoint import load_checkpoint
    from edgerl.config import from_sources

    ckpt = load_checkpoint(run_dir / "ckpt.pt")
    info = ckpt["env"]
    od, ad = info["observation_space"]["shape"][0], info["action_space"]["shape"][0]
    agent = SACAgent(from_sources(SACConfig, ckpt["config"]["algo"]), od, ad)
    agent.load_state(ckpt["agent"])
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["eval_return"]]
    last = [float(r["eval_return"]) for r in rows[-3:]]
    nonzero = sum(int((p != 0).sum()) for p in agent.actor.parameters())
    return {
        "final_return": float(rows[-1]["eval_return"]),
        "last3_return": statistics.mean(last),
        "actor_params": count_params(agent.actor),
        "actor_nonzero_params": nonzero,
        "actor_macs": count_macs(agent.actor, torch.zeros(1, od)),
        "actor_widths": agent.actor.spec()["hidden"],
        "wall_s": ckpt["counters"]["wall_s"],
    }


def table(results: dict) -> str:
    lines = ["| env | variant | return (last 3 evals) | final return | actor params (nonzero) | actor MACs | widths | train wall-clock |",
             "|---|---|---|---|---|---|---|---|"]
    for env, by_var in results.items():
        for var, runs in by_var.items():
            ret = [r["last3_return"] for r in runs]
            fin = [r["final_return"] for r in runs]
            sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
            r0 = runs[0]
            lines.append(
                f"| {env} | {var} | {statistics.mean(ret):.0f} ± {sd(ret):.0f} (n={len(runs)}) | "
                f"{statistics.mean(fin):.0f} ± {sd(fin):.0f} | {r0['actor_params']:,} ({r0['actor_nonzero_params']:,}) | "
                f"{r0['actor_macs']:,} | {r0['actor_widths']} | {statistics.mean(r['wall_s'] for r in runs) / 60:.1f} min |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--envs", default="Hopper-v5,HalfCheetah-v5")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--dense", default="256,256", help="dense baseline widths")
    p.add_argument("--scaled", default="1024,1024", help="scaled-up widths that gradual/unstructured prune")
    p.add_argument("--ratios", default="0.5,0.8,0.9")
    p.add_argument("--only", default=None, help="comma-separated subset of variants")
    p.add_argument("--round-to", type=int, default=1)
    p.add_argument("--prune-every", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=5000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--learning-starts", type=int, default=None, help="override the recipe warm-up")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="runs/compare")
    args = p.parse_args()
    out = Path(args.out)
    vs = variants(args)
    if args.only:
        vs = {k: v for k, v in vs.items() if k in args.only.split(",")}
    jobs = [(env, var, int(seed)) for env in args.envs.split(",") for seed in args.seeds.split(",") for var in vs]
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_one, out / env.replace("/", "_") / var / f"seed{seed}", env, seed, vs[var], args):
                   (env, var, seed) for env, var, seed in jobs}
        for f in futures:
            f.result()
    results: dict = {}
    for env, var, seed in jobs:
        results.setdefault(env, {}).setdefault(var, []).append(
            {"seed": seed, **summarize(out / env.replace("/", "_") / var / f"seed{seed}")})
    (out / "results.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    md = table(results)
    cmd = "python tools/compare_pruning.py " + " ".join(sys.argv[1:])
    (out / "results.md").write_text(f"Generated by `{cmd}`\n\n{md}\n")
    print(md)


if __name__ == "__main__":
    main()

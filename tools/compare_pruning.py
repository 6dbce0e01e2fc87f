#!/usr/bin/env python
"""The comparison the pruning papers make, on MuJoCo with SAC: dense, gradual group pruning of a
scaled-up network at several final ratios, unstructured masked pruning, and a small network
trained from scratch at the final widths of gradual pruning at 0.8.

    .venv/bin/python tools/compare_pruning.py --envs Hopper-v5,HalfCheetah-v5 --steps 100000 \
        --seeds 1,2,3 --jobs 2 --out runs/compare

The runs are the sweep ``profiles/sweeps/compare_pruning.yaml`` (``edgerl sweep`` runs it, as
1-thread processes, ``--jobs`` at once, resuming killed runs; its variants and widths live in
the spec). This tool adds what ``tools/make_reports.py`` reads: per run the actor's params,
nonzero params, MACs and widths, in ``results.json`` (``results``, beside the sweep's ``rows``)
and a second table in ``results.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


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
    from edgerl.sweep import load_spec, run_sweep

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default=str(REPO / "profiles" / "sweeps" / "compare_pruning.yaml"))
    p.add_argument("--envs", default=None, help="comma-separated env ids (default: the spec's)")
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default: the spec's)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the spec's)")
    p.add_argument("--only", default=None, help="comma-separated subset of variants (scratch keeps its source)")
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--eval-episodes", type=int, default=None)
    p.add_argument("--learning-starts", type=int, default=None, help="override the recipe warm-up")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="runs/compare")
    args = p.parse_args()
    train = {k: v for k, v in {"total_steps": args.steps, "eval_every": args.eval_every,
                               "eval_episodes": args.eval_episodes, "learning_starts": args.learning_starts}.items()
             if v is not None}
    spec = load_spec(args.spec, {"envs": args.envs.split(",") if args.envs else None,
                                 "seeds": [int(s) for s in args.seeds.split(",")] if args.seeds else None,
                                 "train": train})
    if args.only:
        keep = set(args.only.split(","))
        keep |= {spec.variants[v]["scratch_of"] for v in keep if "scratch_of" in spec.variants.get(v, {})}
        spec.variants = {k: v for k, v in spec.variants.items() if k in keep}
    out = Path(args.out)
    cmd = "python tools/compare_pruning.py " + " ".join(sys.argv[1:])
    run_sweep(spec, out, jobs=args.jobs, command=cmd)
    results: dict = {}
    for plan in spec.plans(out.resolve()):
        results.setdefault(plan.env, {}).setdefault(plan.variant, []).append(
            {"seed": plan.seed, **summarize(plan.folder)})
    record = json.loads((out / "results.json").read_text())
    steps = spec.train.get("total_steps")
    record.update(args={"envs": ",".join(spec.envs), "seeds": ",".join(map(str, spec.seeds)), "steps": steps,
                        "spec": args.spec}, results=results)
    (out / "results.json").write_text(json.dumps(record, indent=2))
    md = table(results)
    with open(out / "results.md", "a") as f:
        f.write(f"\nPer run (for tools/make_reports.py), mean ± std over seeds:\n\n{md}\n")
    print(md)


if __name__ == "__main__":
    main()

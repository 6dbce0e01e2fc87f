#!/usr/bin/env python
"""Gate-based pruning of SAC + OFENet, measured: dense SAC, SAC + OFENet, SAC + OFENet with
Bernoulli gates (cost-aware regulariser), and the pruned architecture trained from scratch.

    .venv/bin/python tools/measure_gates.py --envs Hopper-v5,HalfCheetah-v5 --steps 300000 \\
        --seeds 1,2,3 --jobs 2 --gate-target 0.75 --out runs/gates

Runs are parallel 1-thread processes (``--jobs``): every gated run (one per ``--gate-lambda``
value, or one steered to ``--gate-target``) is followed by the same architecture trained from
scratch at its final widths (OFENet blocks, actor; critics at the gated run's final critic
widths), and the dense SAC and dense OFENet baselines fill the other workers. Lambda has no universal scale: the gates follow Adam, so a unit closes when
lambda * (its parameter cost) outweighs the mean gradient of its network's own loss, and
OFENet's prediction loss gives ~10x smaller gate gradients than the critics' (measured on Hopper:
|dL/dxi| ~ 1e-3 OFENet, 2e-3 actor, 1.5e-2 critics, per-unit costs 50-500 parameters). Sweep it. Writes into
``--out``: ``results.json``, ``results.md`` (mean +- std over seeds of the evaluation return,
params and MACs of the deployed policy, i.e. OFENet state block + actor trunk + mean head, and
the final widths) and, if matplotlib is installed, ``widths-<env>.png`` (surviving units per
gated layer over training, from the checkpoint's width history). Re-running skips finished runs.
Every hyperparameter not given here comes from ``profiles/recipes/sac.yaml``.

The same runs as a sweep (mean and 95% bootstrap interval per variant; resumes after a kill):
``edgerl sweep profiles/sweeps/measure_gates.yaml``. This tool stays for the tables that
``tools/make_reports.py`` reads (its ``results.json`` with params and MACs per run).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

VARIANTS = ("sac-dense", "ofenet-dense", "ofenet-gates", "ofenet-scratch")


def variant_args(name: str, args: argparse.Namespace) -> list[str]:
    """Flags of a phase-1 variant (``ofenet-gates-<lambda>``; scratch flags come from a gated run)."""
    ofenet = ["--ofenet", "true"]
    if name == "sac-dense":
        return []
    if name == "ofenet-dense":
        return ofenet
    if name.startswith("ofenet-gates-"):
        lam = args.gate_lambda.split(",")[0] if args.gate_target > 0 else name.removeprefix("ofenet-gates-")
        return [*ofenet, "--prune", "gates", "--gate-lambda", lam, "--gate-target", str(args.gate_target),
                "--gate-cost", args.gate_cost, "--prune-start", str(args.prune_start),
                "--prune-end", str(args.prune_end), "--prune-every", str(args.prune_every)]
    raise ValueError(name)


def scratch_args(gated_run: Path) -> list[str]:
    """Flags that build, from scratch, the architecture a gated run ended with."""
    agent, _ = load_agent(gated_run)
    spec = agent.ofenet.spec()
    critic = [max(a, b) for a, b in zip(agent.qf1.spec()["hidden"], agent.qf2.spec()["hidden"], strict=True)]
    csv_ = lambda xs: ",".join(str(int(x)) for x in xs)  # noqa: E731
    return ["--ofenet", "true", "--ofenet-state-widths", csv_(spec["state_widths"]),
            "--ofenet-action-widths", csv_(spec["action_widths"]),
            "--actor-hidden", csv_(agent.actor.spec()["hidden"]), "--hidden", csv_(critic)]


def finished(out: Path, steps: int) -> bool:
    """Whether the run in ``out`` reached ``steps``."""
    import torch

    ckpt = out / "ckpt.pt"
    return ckpt.exists() and torch.load(ckpt, weights_only=True)["counters"]["global_step"] >= steps


def run_one(out: Path, env: str, seed: int, extra: list[str], args: argparse.Namespace) -> Path:
    """Train one run (or resume it) as a 1-thread subprocess; returns its folder."""
    ckpt = out / "ckpt.pt"
    if finished(out, args.steps):
        return out
    if ckpt.exists():
        cmd = [sys.executable, "-m", "edgerl.cli", "train", "--resume", str(out), "--progress", "false"]
    else:
        cmd = [sys.executable, "-m", "edgerl.cli", "train", "--env", env, "--seed", str(seed),
               "--total-steps", str(args.steps), "--threads", "1", "--progress", "false",
               "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
               "--checkpoint-every", str(args.checkpoint_every), "--out", str(out), *args.extra, *extra]
        if args.learning_starts is not None:
            cmd += ["--learning-starts", str(args.learning_starts)]
    out.mkdir(parents=True, exist_ok=True)
    env_vars = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(out / "train.log", "a") as log:
        print(f"[{time.strftime('%H:%M:%S')}] start {out}", flush=True)
        log.write(" ".join(cmd) + "\n")
        log.flush()
        subprocess.run(cmd, cwd=REPO, env=env_vars, stdout=log, stderr=subprocess.STDOUT, check=True)
        print(f"[{time.strftime('%H:%M:%S')}] done  {out}", flush=True)
    return out


def load_agent(run_dir: Path):
    from edgerl.algos.sac import SACAgent, SACConfig
    from edgerl.checkpoint import load_checkpoint
    from edgerl.config import from_sources

    ckpt = load_checkpoint(run_dir / "ckpt.pt")
    info = ckpt["env"]
    agent = SACAgent(from_sources(SACConfig, ckpt["config"]["algo"]),
                     info["observation_space"]["shape"][0], info["action_space"]["shape"][0])
    agent.load_state(ckpt["agent"])
    return agent, ckpt


def deployed_cost(agent) -> tuple[int, int]:
    """Parameters and MACs (Linear layers, per observation) of what runs on the robot: the OFENet
    state block and the actor's trunk and mean head (the log-std head is not exported)."""
    from torch import nn

    from edgerl.prune.cost import deploy_scope

    prefix = {"ofenet_state": "ofenet.state_block", "actor": "actor"}
    params = macs = 0
    for name, net in agent.deployed_nets().items():
        for sub, m in net.named_modules():
            if name not in prefix or not deploy_scope(f"{prefix[name]}.{sub}".rstrip(".")):
                continue
            params += sum(p.numel() for p in m.parameters(recurse=False))
            if isinstance(m, nn.Linear):
                macs += m.in_features * m.out_features
    return params, macs


def summarize(run_dir: Path) -> dict[str, Any]:
    agent, ckpt = load_agent(run_dir)
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["eval_return"]]
    params, macs = deployed_cost(agent)
    widths = {"actor": agent.actor.spec()["hidden"]}
    if agent.ofenet is not None:
        spec = agent.ofenet.spec()
        widths.update(state=spec["state_widths"], action=spec["action_widths"])
    gates = ckpt.get("hooks", {}).get("gates")
    return {
        "final_return": float(rows[-1]["eval_return"]),
        "last3_return": statistics.mean(float(r["eval_return"]) for r in rows[-3:]),
        "deployed_params": params,
        "deployed_macs": macs,
        "widths": widths,
        "critic_widths": [agent.qf1.spec()["hidden"], agent.qf2.spec()["hidden"]],
        "wall_s": ckpt["counters"]["wall_s"],
        "width_history": gates["history"] if gates else None,
        "expected_widths": gates.get("expected", []) if gates else None,
        "eval_curve": [[int(float(r["step"])), float(r["eval_return"])] for r in rows],
    }


def table(results: dict[str, Any]) -> str:
    def ms(v: list[float]) -> str:
        return f"{statistics.mean(v):.0f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.0f}"

    lines = ["| env | variant | return (last 3 evals) | final return | deployed params | deployed MACs | "
             "widths (seed 1st) | wall-clock |", "|---|---|---|---|---|---|---|---|"]
    for env, by_var in results.items():
        for var, runs in by_var.items():
            lines.append(
                f"| {env} | {var} | {ms([r['last3_return'] for r in runs])} (n={len(runs)}) | "
                f"{ms([r['final_return'] for r in runs])} | {ms([r['deployed_params'] for r in runs])} | "
                f"{ms([r['deployed_macs'] for r in runs])} | {runs[0]['widths']} | "
                f"{statistics.mean(r['wall_s'] for r in runs) / 60:.0f} min |")
    return "\n".join(lines)


def goal_check(results: dict[str, Any]) -> str:
    """The issue's goal per env and gated variant: deployed params <= 30% of dense OFENet + actor,
    return >= 95% of it, and above small-from-scratch (means over seeds of the last-3 returns)."""
    def mean(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.mean(r[key] for r in runs)

    lines = []
    for env, by_var in results.items():
        dense = by_var.get("ofenet-dense")
        for var, runs in by_var.items():
            if not var.startswith("ofenet-gates-") or not dense:
                continue
            p_ratio = mean(runs, "deployed_params") / mean(dense, "deployed_params")
            r_ratio = mean(runs, "last3_return") / mean(dense, "last3_return")
            scratch = by_var.get(var.replace("gates", "scratch"))
            vs = (f", scratch {mean(scratch, 'last3_return'):.0f} -> "
                  f"{'above' if mean(runs, 'last3_return') > mean(scratch, 'last3_return') else 'NOT above'}"
                  if scratch else ", no scratch run")
            met = p_ratio <= 0.30 and r_ratio >= 0.95 and bool(scratch) and \
                mean(runs, "last3_return") > mean(scratch, "last3_return")
            lines.append(f"- {env} {var} (n={len(runs)}): deployed params {p_ratio:.1%} of ofenet-dense, "
                         f"return {r_ratio:.1%} of ofenet-dense{vs}: goal {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def plot_widths(results: dict[str, Any], out: Path) -> list[str]:
    """One PNG per env: surviving units of every gated layer over training (first gated seed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no width plots", flush=True)
        return []
    written = []
    for env, by_var in results.items():
        for var, all_runs in by_var.items():
            runs = [r for r in all_runs if r["width_history"]]
            if not var.startswith("ofenet-gates-") or not runs:
                continue
            history, end = runs[0]["width_history"], runs[0]["eval_curve"][-1][0]
            blocks: dict[str, list[str]] = {}  # one panel per network block
            for layer in history[0][1]:
                parts = layer.split(".")
                blocks.setdefault(".".join(parts[:2]) if parts[0] == "ofenet" else parts[0], []).append(layer)
            fig, axes = plt.subplots(1, len(blocks), figsize=(4 * len(blocks), 4), squeeze=False)
            steps = [s for s, _ in history] + [end]
            for ax, (block, layers) in zip(axes[0], blocks.items(), strict=True):
                for layer in layers:
                    widths = [w[layer] for _, w in history] + [history[-1][1][layer]]
                    line, = ax.step(steps, widths, where="post",
                                    label=layer.removeprefix(block).strip(".").removeprefix("layers."))
                    soft = [(st, w[layer]) for st, w in runs[0].get("expected_widths") or [] if layer in w]
                    if soft:  # expected width (sum of theta): the gates before units go
                        ax.plot(*zip(*soft, strict=True), ls=":", lw=1, color=line.get_color())
                ax.set_title(block, fontsize=9)
                ax.set_xlabel("environment step")
                ax.set_ylim(bottom=0)
                ax.legend(fontsize=6)
            axes[0][0].set_ylabel("surviving units")
            dotted = ", dotted: expected units (sum of gate probabilities)" if runs[0].get("expected_widths") else ""
            fig.suptitle(f"{env}: {var} (seed {runs[0]['seed']}); solid: units present{dotted}")
            path = out / f"widths-{env.replace('/', '_')}-{var}.png"
            fig.tight_layout()
            fig.savefig(path, dpi=120)
            plt.close(fig)
            written.append(str(path))
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--envs", default="Hopper-v5,HalfCheetah-v5")
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"subset of {', '.join(VARIANTS)}")
    p.add_argument("--gate-lambda", default="1e-5", help="comma-separated lambdas (one gated variant each)")
    p.add_argument("--gate-cost", default="deploy", choices=("deploy", "train"))
    p.add_argument("--gate-target", type=float, default=0.0,
                   help="share of the counted cost to remove (> 0: one gated variant, lambda = the first "
                        "--gate-lambda as the starting point, steered along the cubic schedule)")
    p.add_argument("--prune-start", type=float, default=0.2)
    p.add_argument("--prune-end", type=float, default=0.8)
    p.add_argument("--prune-every", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=5000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=25_000)
    p.add_argument("--learning-starts", type=int, default=None, help="override the recipe warm-up")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="runs/gates")
    p.add_argument("--summarize-only", action="store_true",
                   help="train nothing: tabulate every finished run of --envs/--seeds under --out "
                        "(e.g. after several invocations with different seeds)")
    p.add_argument("extra", nargs="*", help="more `edgerl train` flags for every run (after --)")
    args = p.parse_args()
    out = Path(args.out)
    chosen = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {VARIANTS}")
    lambdas = [f"{float(x):g}" for x in args.gate_lambda.split(",") if x]
    envs, seeds = args.envs.split(","), [int(s) for s in args.seeds.split(",")]

    def folder(env: str, var: str, seed: int) -> Path:
        return out / env.replace("/", "_") / var / f"seed{seed}"

    dense = [v for v in ("sac-dense", "ofenet-dense") if v in chosen]
    tags = [f"target{args.gate_target:g}"] if args.gate_target > 0 else lambdas
    gated = [f"ofenet-gates-{t}" for t in tags] if "ofenet-gates" in chosen else []
    scratch = {f"ofenet-gates-{t}": f"ofenet-scratch-{t}" for t in tags} if "ofenet-scratch" in chosen else {}

    def gated_then_scratch(e: str, v: str, s: int) -> None:
        """A gated run, then (same worker) the scratch run at the widths it ended with."""
        run_one(folder(e, v, s), e, s, variant_args(v, args), args)
        if v in scratch:
            run_one(folder(e, scratch[v], s), e, s, scratch_args(folder(e, v, s)), args)

    # Longest chains first: gated + scratch, then the dense baselines fill the other worker.
    jobs = [(gated_then_scratch, e, v, s) for e in envs for s in seeds for v in gated]
    jobs += [(lambda e, v, s: run_one(folder(e, v, s), e, s, variant_args(v, args), args), e, v, s)
             for v in reversed(dense) for e in envs for s in seeds]
    if not args.summarize_only:
        with ThreadPoolExecutor(args.jobs) as pool:
            for f in [pool.submit(fn, e, v, s) for fn, e, v, s in jobs]:
                f.result()

    runs = [(e, v, s) for e in envs for s in seeds for v in [*dense, *gated, *(scratch[g] for g in gated if g in scratch)]]
    if args.summarize_only:
        runs = [(e, v, s) for e, v, s in runs if finished(folder(e, v, s), args.steps)]
    results: dict[str, Any] = {}
    for e, v, s in runs:
        results.setdefault(e, {}).setdefault(v, []).append({"seed": s, **summarize(folder(e, v, s))})
    plots = plot_widths(results, out)
    (out / "results.json").write_text(json.dumps({"args": vars(args), "results": results, "plots": plots}, indent=2))
    md = table(results) + "\n\n" + goal_check(results)
    cmd = "python tools/measure_gates.py " + " ".join(sys.argv[1:])
    (out / "results.md").write_text(f"Generated by `{cmd}`\n\n{md}\n" + "".join(f"\n![widths]({Path(x).name})\n" for x in plots))
    print(md)


if __name__ == "__main__":
    main()

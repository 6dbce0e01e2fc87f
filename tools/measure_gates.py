#!/usr/bin/env python
"""Gate-based pruning of SAC + OFENet, measured: dense SAC, SAC + OFENet, SAC + OFENet with
Bernoulli gates (cost-aware regulariser), and the pruned architecture trained from scratch.

    .venv/bin/python tools/measure_gates.py --envs Hopper-v5,HalfCheetah-v5 --steps 300000 \\
        --seeds 1,2,3 --jobs 2 --out runs/gates

The runs are the sweep ``profiles/sweeps/measure_gates.yaml`` (``edgerl sweep`` runs it as
1-thread processes, ``--jobs`` at once, resuming killed runs; every gated variant is named
``ofenet-gates-<tag>`` and its from-scratch twin ``ofenet-scratch-<tag>``, ``scratch_of`` it).
Lambda has no universal scale: the gates follow Adam, so a unit closes when lambda * (its
parameter cost) outweighs the mean gradient of its network's own loss, and OFENet's prediction
loss gives ~10x smaller gate gradients than the critics' (measured on Hopper: |dL/dxi| ~ 1e-3
OFENet, 2e-3 actor, 1.5e-2 critics, per-unit costs 50-500 parameters); ``gate_target`` steers it.
This tool adds to the sweep's results: ``results.json`` (``results``: per run the deployed
params and MACs, i.e. OFENet state block + actor trunk + mean head, widths, width history),
a second table and the goal check in ``results.md``, and, with matplotlib,
``widths-<env>-<variant>.png`` (surviving units per gated layer over training).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

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
    from edgerl.bench.plotting import pyplot

    plt = pyplot()
    if plt is None:
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
    from edgerl.sweep import load_spec, run_sweep

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", default=str(REPO / "profiles" / "sweeps" / "measure_gates.yaml"))
    p.add_argument("--envs", default=None, help="comma-separated env ids (default: the spec's)")
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default: the spec's)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the spec's)")
    p.add_argument("--variants", default=None, help="comma-separated subset of the spec's variants")
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--eval-episodes", type=int, default=None)
    p.add_argument("--learning-starts", type=int, default=None, help="override the recipe warm-up")
    p.add_argument("--checkpoint-every", type=int, default=None)
    for flag, kind in (("gate-target", float), ("gate-lambda", float), ("gate-cost", str), ("prune-start", float),
                       ("prune-end", float), ("prune-every", int)):
        p.add_argument(f"--{flag}", type=kind, default=None, help="for the gated variants (default: the spec's)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="runs/gates")
    args = p.parse_args()
    train = {k: v for k, v in {"total_steps": args.steps, "eval_every": args.eval_every,
                               "eval_episodes": args.eval_episodes, "learning_starts": args.learning_starts,
                               "checkpoint_every": args.checkpoint_every}.items() if v is not None}
    gated = {k: getattr(args, k) for k in ("gate_target", "gate_lambda", "gate_cost", "prune_start", "prune_end",
                                           "prune_every") if getattr(args, k) is not None}
    spec = load_spec(args.spec, {"envs": args.envs.split(",") if args.envs else None,
                                 "seeds": [int(s) for s in args.seeds.split(",")] if args.seeds else None,
                                 "train": train})
    if args.variants:
        keep = set(args.variants.split(","))
        unknown = sorted(keep - set(spec.variants))
        if unknown:
            p.error(f"unknown variants {unknown}; the spec has {sorted(spec.variants)}")
        keep |= {spec.variants[v]["scratch_of"] for v in keep if "scratch_of" in spec.variants[v]}
        spec.variants = {k: v for k, v in spec.variants.items() if k in keep}
    for flags in spec.variants.values():
        if flags.get("prune") == "gates":
            flags.update(gated)
    out = Path(args.out)
    cmd = "python tools/measure_gates.py " + " ".join(sys.argv[1:])
    run_sweep(spec, out, jobs=args.jobs, command=cmd)
    results: dict[str, Any] = {}
    for plan in spec.plans(out.resolve()):
        results.setdefault(plan.env, {}).setdefault(plan.variant, []).append(
            {"seed": plan.seed, **summarize(plan.folder)})
    plots = plot_widths(results, out)
    record = json.loads((out / "results.json").read_text())
    record.update(args={"envs": ",".join(spec.envs), "seeds": ",".join(map(str, spec.seeds)),
                        "steps": spec.train.get("total_steps"), "spec": args.spec}, results=results, plots=plots)
    (out / "results.json").write_text(json.dumps(record, indent=2))
    md = table(results) + "\n\n" + goal_check(results)
    with open(out / "results.md", "a") as f:
        f.write(f"\nPer run (for tools/make_reports.py), mean ± std over seeds:\n\n{md}\n"
                + "".join(f"\n![widths]({Path(x).name})\n" for x in plots))
    print(md)


if __name__ == "__main__":
    main()

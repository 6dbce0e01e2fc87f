"""What ``tools/measure_gates.py`` adds to a gate-pruning sweep (dense SAC, SAC + OFENet, with
Bernoulli gates, and the gated architecture from scratch): per run the deployed parameters and
MACs, widths and width history; a table over seeds, the goal check and width plots.

"Deployed" is what runs on the robot: OFENet's state block and the actor's trunk and mean head
(:func:`edgerl.prune.cost.deploy_scope`, the scope the ``deploy`` gate cost prices).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgerl.algos.run import logged_evals
from edgerl.bench.reports.common import eval_returns, mean_std, save_figure

if TYPE_CHECKING:
    from edgerl.algos.sac import SACAgent

GATED, DENSE = "ofenet-gates-", "ofenet-dense"
"""Variant name prefix of the gated runs, and the dense run they are measured against."""


def deployed_cost(agent: SACAgent) -> tuple[int, int]:
    """Parameters and MACs (Linear layers, per observation) of what runs on the robot: the OFENet
    state block and the actor's trunk and mean head (the log-std head is not exported)."""
    from edgerl.algos.sac import SACNets
    from edgerl.bench.macs import linear_macs
    from edgerl.prune.cost import deploy_scope, exact_count

    nets = SACNets(agent.actor, agent.qf1, agent.qf2, agent.ofenet)
    return exact_count(nets, deploy_scope), linear_macs(nets, deploy_scope)


def summarize(run_dir: Path) -> dict[str, Any]:
    """One run's returns, deployed cost, widths, wall-clock and gate width history."""
    from edgerl.algos.sac import SACAgent
    from edgerl.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run_dir / "ckpt.pt")
    agent = SACAgent.from_checkpoint(ckpt)
    rows = logged_evals(run_dir / "metrics.csv")
    params, macs = deployed_cost(agent)
    widths = {"actor": agent.actor.spec()["hidden"]}
    if agent.ofenet is not None:
        spec = agent.ofenet.spec()
        widths.update(state=spec["state_widths"], action=spec["action_widths"])
    gates = ckpt.get("hooks", {}).get("gates")
    return {
        **eval_returns(rows),
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
    """Markdown table, one row per env and variant: mean ± std over seeds."""
    lines = ["| env | variant | return (last 3 evals) | final return | deployed params | deployed MACs | "
             "widths (seed 1st) | wall-clock |", "|---|---|---|---|---|---|---|---|"]
    for env, by_var in results.items():
        for var, runs in by_var.items():
            lines.append(
                f"| {env} | {var} | {mean_std([r['last3_return'] for r in runs])} (n={len(runs)}) | "
                f"{mean_std([r['final_return'] for r in runs])} | {mean_std([r['deployed_params'] for r in runs])} | "
                f"{mean_std([r['deployed_macs'] for r in runs])} | {runs[0]['widths']} | "
                f"{statistics.mean(r['wall_s'] for r in runs) / 60:.0f} min |")
    return "\n".join(lines)


def goal_check(results: dict[str, Any]) -> str:
    """The issue's goal per env and gated variant: deployed params <= 30% of dense OFENet + actor,
    return >= 95% of it, and above small-from-scratch (means over seeds of the last-3 returns)."""
    def mean(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.mean(r[key] for r in runs)

    lines = []
    for env, by_var in results.items():
        dense = by_var.get(DENSE)
        for var, runs in by_var.items():
            if not var.startswith(GATED) or not dense:
                continue
            p_ratio = mean(runs, "deployed_params") / mean(dense, "deployed_params")
            r_ratio = mean(runs, "last3_return") / mean(dense, "last3_return")
            scratch = by_var.get(var.replace("gates", "scratch"))
            vs = (f", scratch {mean(scratch, 'last3_return'):.0f} -> "
                  f"{'above' if mean(runs, 'last3_return') > mean(scratch, 'last3_return') else 'NOT above'}"
                  if scratch else ", no scratch run")
            met = p_ratio <= 0.30 and r_ratio >= 0.95 and bool(scratch) and \
                mean(runs, "last3_return") > mean(scratch, "last3_return")
            lines.append(f"- {env} {var} (n={len(runs)}): deployed params {p_ratio:.1%} of {DENSE}, "
                         f"return {r_ratio:.1%} of {DENSE}{vs}: goal {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def _panels(history: list[Any]) -> dict[str, list[str]]:
    """Gated layers grouped into one panel per network block (``ofenet.state_block``, ``actor``, ...)."""
    blocks: dict[str, list[str]] = {}
    for layer in history[0][1]:
        parts = layer.split(".")
        blocks.setdefault(".".join(parts[:2]) if parts[0] == "ofenet" else parts[0], []).append(layer)
    return blocks


def plot_widths(results: dict[str, Any], out: Path) -> list[str]:
    """One PNG per env and gated variant: surviving units of every gated layer over training (first
    gated seed); the paths written (none without matplotlib)."""
    from edgerl.bench.plotting import pyplot

    plt = pyplot()
    if plt is None:
        print("matplotlib is not installed (pip install matplotlib): no width plots", flush=True)
        return []
    written = []
    for env, by_var in results.items():
        for var, all_runs in by_var.items():
            runs = [r for r in all_runs if r["width_history"]]
            if not var.startswith(GATED) or not runs:
                continue
            history, end = runs[0]["width_history"], runs[0]["eval_curve"][-1][0]
            blocks = _panels(history)
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
            save_figure(plt, fig, path)
            written.append(str(path))
    return written

"""What ``tools/compare_pruning.py`` adds to a pruning-comparison sweep (dense, gradual group
pruning at several ratios, unstructured masking, small from scratch): per run the actor's
parameters, nonzero parameters, MACs and widths, and a table over seeds."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from edgerl.algos.run import logged_evals
from edgerl.bench.reports.common import eval_returns, mean_std


def summarize(run_dir: Path) -> dict[str, Any]:
    """One run's returns, actor size (masked weights count as parameters, not as nonzero ones),
    widths and wall-clock."""
    from edgerl.algos.sac import SACAgent
    from edgerl.bench.macs import count_macs, count_params
    from edgerl.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run_dir / "ckpt.pt")
    agent = SACAgent.from_checkpoint(ckpt)
    nonzero = sum(int((p != 0).sum()) for p in agent.actor.parameters())
    return {
        **eval_returns(logged_evals(run_dir / "metrics.csv")),
        "actor_params": count_params(agent.actor),
        "actor_nonzero_params": nonzero,
        "actor_macs": count_macs(agent.actor, *agent.actor.example_inputs(1)),
        "actor_widths": agent.actor.spec()["hidden"],
        "wall_s": ckpt["counters"]["wall_s"],
    }


def table(results: dict[str, Any]) -> str:
    """Markdown table, one row per env and variant: returns as mean ± std over seeds, sizes of the
    first seed."""
    lines = ["| env | variant | return (last 3 evals) | final return | actor params (nonzero) | actor MACs | widths | train wall-clock |",
             "|---|---|---|---|---|---|---|---|"]
    for env, by_var in results.items():
        for var, runs in by_var.items():
            r0 = runs[0]
            lines.append(
                f"| {env} | {var} | {mean_std([r['last3_return'] for r in runs])} (n={len(runs)}) | "
                f"{mean_std([r['final_return'] for r in runs])} | {r0['actor_params']:,} ({r0['actor_nonzero_params']:,}) | "
                f"{r0['actor_macs']:,} | {r0['actor_widths']} | {statistics.mean(r['wall_s'] for r in runs) / 60:.1f} min |")
    return "\n".join(lines)

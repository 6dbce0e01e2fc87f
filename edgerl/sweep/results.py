"""A sweep's results: one score per run, then per variant and env the mean over seeds with a 95%
percentile-bootstrap interval (resampling seeds, as rliable does within each task: with one env
per row, its stratified bootstrap is this), as a table, JSON and a plot."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgerl.runtime.fileio import atomic_write_text
from edgerl.sweep.execute import DISTILL_REPORT
from edgerl.sweep.spec import RunPlan, SweepSpec

BOOTSTRAP_SAMPLES = 10_000


def run_score(folder: Path, last: int) -> dict[str, Any]:
    """Mean of the run's last ``last`` evaluation returns, its deployed parameters, wall-clock; for a
    distilled run, the student's return over the distillation's evaluation episodes, its
    parameters and the distillation's wall-clock."""
    report = folder / DISTILL_REPORT
    if report.exists():
        data = json.loads(report.read_text())
        ret = data.get("student_return") or {}
        return {"score": float(ret.get("mean", math.nan)), "params": data.get("student_params"),
                "wall_s": data.get("wall_s")}
    with open(folder / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("eval_return")]
    if not rows:
        return {"score": math.nan, "params": None, "wall_s": None}
    tail = [float(r["eval_return"]) for r in rows[-last:]]
    params = rows[-1].get("params")
    return {"score": float(np.mean(tail)), "params": int(float(params)) if params else None,
            "wall_s": float(rows[-1]["wall_s"]) if rows[-1].get("wall_s") else None}


def bootstrap_ci(values: list[float], level: float = 0.95, samples: int = BOOTSTRAP_SAMPLES,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (NaN for fewer than 2 values)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2 or not np.isfinite(x).all():
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (samples, len(x)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def collect(spec: SweepSpec, plans: list[RunPlan]) -> list[dict[str, Any]]:
    """One row per (variant, env): seeds, per-seed scores, mean, 95% interval, params."""
    rows = []
    for variant in spec.variants:
        for env in spec.envs:
            runs = [p for p in plans if p.variant == variant and p.env == env]
            scores = [run_score(p.folder, spec.last) for p in runs]
            values = [s["score"] for s in scores]
            lo, hi = bootstrap_ci(values)
            params = [s["params"] for s in scores if s["params"] is not None]
            walls = [s["wall_s"] for s in scores if s["wall_s"] is not None]
            rows.append({"variant": variant, "env": env, "seeds": [p.seed for p in runs], "scores": values,
                         "mean": float(np.mean(values)), "ci95": [lo, hi],
                         "params": int(np.mean(params)) if params else None,
                         "wall_min": float(np.mean(walls)) / 60 if walls else None})
    return rows


def markdown(spec: SweepSpec, rows: list[dict[str, Any]]) -> str:
    what = f"mean of the last {spec.last} evaluations" if spec.last > 1 else "final evaluation"
    distilled = [v for v, f in spec.variants.items() if "distill_of" in f]
    note = (f" Distilled variants ({', '.join(distilled)}): the student's return over the distillation's "
            "evaluation episodes (`edgerl distill --eval-episodes`), and the distillation's minutes.") if distilled else ""
    lines = [f"Return ({what}), mean over seeds with a 95% percentile-bootstrap interval.{note}", "",
             "| variant | env | seeds | return | 95% interval | deployed params | train min |",
             "|---|---|---:|---:|---|---:|---:|"]
    for r in rows:
        lo, hi = r["ci95"]
        ci = "n/a" if math.isnan(lo) else f"[{lo:.1f}, {hi:.1f}]"
        params = "" if r["params"] is None else f"{r['params']:,}"
        wall = "" if r["wall_min"] is None else f"{r['wall_min']:.1f}"
        lines.append(f"| {r['variant']} | {r['env']} | {len(r['seeds'])} | {r['mean']:.1f} | {ci} | {params} | {wall} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    """Return per variant with its interval, one panel per env; False without matplotlib."""
    from edgerl.bench.plotting import pyplot

    plt = pyplot()
    if plt is None:
        return False
    envs = list(dict.fromkeys(r["env"] for r in rows))
    fig, axes = plt.subplots(1, len(envs), figsize=(4.5 * len(envs), 3.5), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        sub = [r for r in rows if r["env"] == env]
        y = np.array([r["mean"] for r in sub])
        ci = np.array([r["ci95"] for r in sub], dtype=np.float64)
        err = np.nan_to_num(np.abs(ci.T - y), nan=0.0)
        ax.errorbar(range(len(sub)), y, yerr=err, fmt="o", capsize=4)
        for i, r in enumerate(sub):
            ax.scatter([i] * len(r["scores"]), r["scores"], s=8, alpha=0.4, color="gray")
        ax.set_xticks(range(len(sub)), [r["variant"] for r in sub], rotation=30, ha="right")
        ax.set_title(env)
        ax.set_ylabel("return")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_results(spec: SweepSpec, plans: list[RunPlan], out: Path, command: str) -> list[dict[str, Any]]:
    """``results.json``, ``results.md`` and ``results.png`` (with matplotlib) in ``out``."""
    rows = collect(spec, plans)
    atomic_write_text(out / "results.json", json.dumps({"spec": spec.source, "name": spec.name, "command": command,
                                                        "rows": rows}, indent=2) + "\n")
    atomic_write_text(out / "results.md", f"# {spec.name}\n\nGenerated by `{command}`\n\n{markdown(spec, rows)}\n")
    plot(rows, out / "results.png")
    return rows


def run_summaries(spec: SweepSpec, out: Path,
                  summarize: Callable[[Path], dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{env: {variant: [{"seed": seed, **summarize(run folder)}, ...]}}`` over every run of ``spec`` in ``out``."""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for plan in spec.plans(out.resolve()):
        results.setdefault(plan.env, {}).setdefault(plan.variant, []).append({"seed": plan.seed, **summarize(plan.folder)})
    return results


def add_run_summaries(out: Path, spec: SweepSpec, spec_path: str, results: dict[str, Any], md: str,
                      plots: list[str] | None = None) -> None:
    """Add a tool's per-run summaries to the sweep's results in ``out``: ``results.json`` gains the
    sweep's ``args``, ``results`` (and ``plots``), ``results.md`` the table ``md`` (and the plots)."""
    record = json.loads((out / "results.json").read_text())
    record.update(args={"envs": ",".join(spec.envs), "seeds": ",".join(map(str, spec.seeds)),
                        "steps": spec.train.get("total_steps"), "spec": spec_path}, results=results)
    if plots is not None:
        record["plots"] = plots
    atomic_write_text(out / "results.json", json.dumps(record, indent=2))
    with open(out / "results.md", "a") as f:
        f.write(f"\nPer run (for tools/make_reports.py), mean ± std over seeds:\n\n{md}\n"
                + "".join(f"\n![widths]({Path(x).name})\n" for x in plots or []))

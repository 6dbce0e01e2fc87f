"""The training report: return vs deployed actor parameters of the training comparisons
(``runs/compare*`` from ``tools/compare_pruning.py``, ``runs/gates*`` from ``tools/measure_gates.py``),
as tables and a plot per environment (``training.md``, ``training_return_vs_params.png``)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgerl.bench.reports.common import (
    device_text,
    panels,
    pyplot,
    read_raw_checkpoint,
    save_figure,
    versions_text,
)
from edgerl.bench.reports.options import ReportOptions
from edgerl.runtime.fileio import atomic_write_text

if TYPE_CHECKING:
    from edgerl.bench.api import Log

TRAIN_COMMANDS = {
    "compare": ".venv/bin/python tools/compare_pruning.py --envs Hopper-v5,HalfCheetah-v5 --steps 100000 "
               "--seeds 1,2,3 --jobs 2 --out runs/compare",
    "gates": ".venv/bin/python tools/measure_gates.py --envs Hopper-v5,HalfCheetah-v5 --steps 300000 "
             "--seeds 1,2,3 --jobs 2 --gate-target 0.75 --out runs/gates",
}
"""The commands that produce the comparison folders, by tool."""


def _mean_sd(v: list[float]) -> str:
    """``mean ± std``; a single value has no spread to report (not a spread of 0)."""
    return f"{statistics.mean(v):,.0f} ± {statistics.stdev(v):,.0f}" if len(v) > 1 else f"{v[0]:,.0f}"


def _rel(path: Path, root: Path) -> Path:
    return path.relative_to(root) if path.is_relative_to(root) else path


def _tool_script(tool: str) -> str:
    return "compare_pruning" if tool == "compare" else "measure_gates"


def run_status(folder: Path) -> list[tuple[str, int, int | None]]:
    """``(run folder, global_step, total_steps)`` of every run folder under ``folder`` (a folder with a
    ``train.log`` or ``ckpt.pt``); step -1 when it has no readable checkpoint yet."""
    out: list[tuple[str, int, int | None]] = []
    runs = sorted({p.parent for pat in ("train.log", "ckpt.pt") for p in folder.rglob(pat)})
    for run in runs:
        name, ckpt = run.relative_to(folder), run / "ckpt.pt"
        if not ckpt.is_file():
            out.append((f"{name} (no checkpoint yet)", -1, None))
            continue
        try:
            c = read_raw_checkpoint(ckpt)
        except Exception as e:  # a checkpoint being replaced right now, or damaged
            out.append((f"{name} (unreadable: {type(e).__name__})", -1, None))
            continue
        total = (c.get("config", {}).get("run") or {}).get("total_steps")
        out.append((str(name), int(c["counters"]["global_step"]), total))
    return out


def _versions_of(folder: Path) -> str | None:
    """Library versions recorded in the first checkpoint under ``folder``."""
    for ckpt in sorted(folder.rglob("ckpt.pt")):
        try:
            v = read_raw_checkpoint(ckpt).get("versions") or {}
        except Exception:
            continue
        return versions_text(v)
    return None


@dataclass
class Source:
    """One comparison folder: its results, or why there are none yet."""

    folder: Path
    tool: str
    """``compare`` (tools/compare_pruning.py) or ``gates`` (tools/measure_gates.py)."""
    results: dict[str, Any] | None
    args: dict[str, Any] | None


def find_sources(patterns: Sequence[tuple[str, str]], root: Path) -> list[Source]:
    """Folders matching the glob patterns (relative to ``root``), with their results.json if written."""
    out = []
    for pattern, tool in patterns:
        for folder in sorted(p for p in root.glob(pattern) if p.is_dir()):
            f = folder / "results.json"
            data = json.loads(f.read_text()) if f.is_file() else None
            out.append(Source(folder, tool, data["results"] if data else None, data.get("args") if data else None))
    return out


def points(src: Source) -> list[dict[str, Any]]:
    """One point per env, variant and seed: deployed params, MACs, return."""
    pts = []
    for env, by_var in (src.results or {}).items():
        for var, runs in by_var.items():
            for r in runs:
                params = r.get("actor_params", r.get("deployed_params"))
                macs = r.get("actor_macs", r.get("deployed_macs"))
                pts.append({"source": src.folder.name, "tool": src.tool, "env": env, "variant": var,
                            "seed": r["seed"], "params": params, "macs": macs, "last3": r["last3_return"],
                            "final": r["final_return"], "wall_s": r["wall_s"],
                            "nonzero": r.get("actor_nonzero_params"), "widths": r.get("actor_widths", r.get("widths"))})
    return pts


def training_table(pts: list[dict[str, Any]], tool: str) -> str:
    """Markdown table, one line per env and variant (mean ± std over seeds)."""
    what = "actor params (nonzero)" if tool == "compare" else "deployed params (OFENet state block + actor)"
    lines = [f"| env | variant | seeds | return, last 3 evals | final return | {what} | MACs | widths (first seed) "
             "| train wall-clock |", "|---|---|---:|---:|---:|---:|---:|---|---:|"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in pts:
        groups.setdefault((p["env"], p["variant"]), []).append(p)
    for (env, var), g in groups.items():
        nz = f" ({g[0]['nonzero']:,})" if g[0]["nonzero"] is not None else ""
        lines.append(f"| {env} | {var} | {len(g)} | {_mean_sd([p['last3'] for p in g])} | "
                     f"{_mean_sd([p['final'] for p in g])} | {statistics.mean(p['params'] for p in g):,.0f}{nz} | "
                     f"{statistics.mean(p['macs'] for p in g):,.0f} | {g[0]['widths']} | "
                     f"{statistics.mean(p['wall_s'] for p in g) / 60:.1f} min |")
    return "\n".join(lines)


def plot_training(pts: list[dict[str, Any]], path: Path) -> None:
    """Return (last 3 evaluations) vs deployed params, log x, one panel per env; seeds and mean ± std."""
    plt = pyplot()
    envs = list(dict.fromkeys(p["env"] for p in pts))
    fig, axes, colors = panels(plt, len(envs), 5)
    for ax, env in zip(axes, envs, strict=True):
        keys = list(dict.fromkeys((p["source"], p["variant"]) for p in pts if p["env"] == env))
        seen: dict[int, int] = {}
        for i, (src, var) in enumerate(keys):
            g = [p for p in pts if p["env"] == env and p["source"] == src and p["variant"] == var]
            c = colors[i % len(colors)]
            marker = "o" if g[0]["tool"] == "compare" else "D"
            x = statistics.mean(p["params"] for p in g)
            dodge = 1.0 + 0.04 * seen.get(round(x), 0)  # equal sizes (gradual vs scratch) side by side
            seen[round(x)] = seen.get(round(x), 0) + 1
            ys = [p["last3"] for p in g]
            ax.scatter([p["params"] * dodge for p in g], ys, color=c, alpha=0.35, s=14)
            sd = statistics.stdev(ys) if len(ys) > 1 else 0.0
            ax.errorbar([x * dodge], [statistics.mean(ys)], yerr=[sd], color=c, marker=marker, capsize=3,
                        label=f"{var} ({src}, n={len(g)})")
        ax.set_xscale("log")
        ax.set_xlabel("deployed actor parameters (equal sizes dodged by 4%)")
        ax.set_ylabel("evaluation return (mean of last 3 evals)")
        ax.set_title(env)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(plt, fig, path)


def _missing_lines(src: Source, root: Path) -> list[str]:
    status = run_status(src.folder)
    done = sum(1 for _, s, t in status if t is not None and s >= t)
    tool = _tool_script(src.tool)
    lines = [f"**{_rel(src.folder, root)}**: no `results.json` yet (`tools/{tool}.py` writes it once every run has "
             f"finished); {done} of the {len(status)} run folders started so far have finished (the tool may start "
             "more):", ""]
    if status:
        lines += ["| run | env steps done / total |", "|---|---:|"]
        lines += [f"| {name} | {s:,} / {t:,} |" if t else f"| {name} | {s if s >= 0 else '-'} / ? |"
                  for name, s, t in status]
    lines += ["", f"`tools/{tool}.py` writes the results when its last run ends (if it was interrupted, rerun it "
              "with the same arguments: it skips finished runs); then rerun this script (`--parts training` "
              "suffices).", ""]
    return lines


def training_doc(sources: list[Source], command: str, root: Path, device: dict[str, Any]) -> str:
    """The ``training.md`` page."""
    out = ["# Return vs deployed parameters (training comparisons)", "", "Generated by:", "", "```", command,
           "```", "", "Read from `runs/compare*/results.json` and `runs/gates*/results.json`. Rendering machine: "
           f"{device_text(device, 'Rendered')}", ""]
    with_results = [s for s in sources if s.results]
    if not sources:
        out += ["**No training comparison results exist yet** (no `runs/compare*` or `runs/gates*` folder). "
                "Produce them with:", "", "```", TRAIN_COMMANDS["compare"], TRAIN_COMMANDS["gates"], "```",
                "", "then rerun this script.", ""]
        return "\n".join(out)
    if with_results:
        out += ["Deployed params: `compare` rows count the whole SAC actor module (mean and log-std heads; "
                "unstructured pruning keeps dense shapes, its nonzero count in brackets); `gates` rows count "
                "what runs on the robot (OFENet state block + actor trunk + mean head). Returns are the mean "
                "of the last 3 evaluations, mean ± std over seeds (points: seeds; a variant with one seed has no "
                "± and no error bar: its spread is unmeasured).", "",
                "![return vs params](training_return_vs_params.png)", ""]
    for src in sources:
        if not src.results:
            out += _missing_lines(src, root)
            continue
        a = src.args or {}
        settings = ", ".join(f"{k}={a[k]}" for k in ("envs", "steps", "seeds", "dense", "scaled", "ratios",
                                                     "gate_lambda", "round_to", "prune_every", "eval_every",
                                                     "eval_episodes", "learning_starts") if k in a)
        out += [f"## {_rel(src.folder, root)}", "", f"Made by `tools/{_tool_script(src.tool)}.py` ({settings}). "
                f"Training library versions (first checkpoint): {_versions_of(src.folder) or 'not recorded'}.", "",
                training_table(points(src), src.tool), ""]
    if not any(s.tool == "gates" for s in sources):
        out += ["No `runs/gates*` results (gate-based pruning). Produce them with:", "", "```",
                TRAIN_COMMANDS["gates"], "```", ""]
    return "\n".join(out)


def run_training(opts: ReportOptions, command: str, out: Path, root: Path, log: Log) -> list[str]:
    """Write ``training.md`` (and its plot when any results exist); ``opts.compare``/``opts.gates`` are
    globs relative to ``root``."""
    from edgerl.bench.device import device_info

    sources = find_sources([(p, "compare") for p in opts.compare] + [(p, "gates") for p in opts.gates], root)
    pts = [p for s in sources for p in points(s)]
    stale = out / "training_return_vs_params.png"
    written = ["training.md"]
    if pts:
        plot_training(pts, stale)
        written.append(stale.name)
    elif stale.exists():
        stale.unlink()
    atomic_write_text(out / "training.md", training_doc(sources, command, root, device_info(1)))
    log(f"training: {len(sources)} folder(s), {sum(1 for s in sources if s.results)} with results, "
        f"{len(pts)} run(s)")
    return written

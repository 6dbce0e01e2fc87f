"""The widths report: surviving width per layer over training, from the width history a run's
``ckpt.pt`` keeps (``hooks.gates.history`` or ``hooks.gradual.history``), as step lines per layer
(``widths.md``, ``widths-<run>.png``).

A gradual SAC run saved without a history is reconstructed from its stored schedule (exactly what
``GradualPruner`` does on every SAC step) and shown only if the reconstruction ends at the
checkpoint's actual widths; the page says which curves are reconstructed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgerl.bench.reports.common import pyplot, read_raw_checkpoint, save_figure, versions_text
from edgerl.bench.reports.options import ReportOptions
from edgerl.bench.reports.training import TRAIN_COMMANDS
from edgerl.runtime.fileio import atomic_write_text

if TYPE_CHECKING:
    from edgerl.bench.api import Log


def _flat_widths(w: dict[str, Any]) -> dict[str, int]:
    """``{"net/group": width}`` from either that or ``{net: {group: width}}``."""
    out = {}
    for k, v in w.items():
        if isinstance(v, dict):
            out.update({f"{k}/{g}": int(x) for g, x in v.items()})
        else:
            out[k] = int(v)
    return out


def reconstruct_gradual(ckpt: dict[str, Any]) -> tuple[list[list[Any]] | None, str]:
    """Width history of a gradual SAC run saved without one, replaying its stored schedule.

    The SAC loop calls the hook on every env step from 1 on, and ``GradualPruner`` shrinks each
    group to ``target_width(original, ratio)`` whenever the schedule's ``due_ratio`` says so: that
    is replayed here. The result is returned only if its final widths equal the shapes of the
    checkpoint's networks.
    """
    from edgerl.prune.gradual import target_width
    from edgerl.prune.schedule import due_ratio, schedule_from_dict

    if ckpt.get("algo") != "sac":
        return None, f"no recorded history, and replaying the schedule is exact only for SAC (algo {ckpt.get('algo')})"
    state = ckpt["hooks"]["gradual"]
    sched = schedule_from_dict(state["schedule"])
    orig = state["original_widths"]
    rt = state.get("round_to")
    end = int(ckpt["counters"]["global_step"])
    history: list[list[Any]] = [[0, {f"{n}/{k}": int(w) for n, g in orig.items() for k, w in g.items()}]]
    applied, last = 0.0, None
    for step in range(1, end + 1):
        ratio, last = due_ratio(sched, step, last, applied), step
        if ratio is None:
            continue
        applied = ratio
        widths = {f"{n}/{k}": min(history[-1][1][f"{n}/{k}"], target_width(int(w), ratio, rt))
                  for n, g in orig.items() for k, w in g.items()}
        if widths != history[-1][1]:
            history.append([step, widths])
    nets = ckpt["agent"].get("nets", {})
    for key, width in history[-1][1].items():
        net, group = key.split("/", 1)
        weight = (nets.get(net) or {}).get("state", {}).get(f"{group}.weight")
        if weight is None or int(weight.shape[0]) != width:
            actual = None if weight is None else int(weight.shape[0])
            return None, f"replayed schedule ends at {key}={width}, the checkpoint has {actual}: not shown"
    return history, "reconstructed from the stored schedule (no recorded history); final widths match the checkpoint"


def check_replay(history: list[list[Any]], ckpt: dict[str, Any], run_dir: Path) -> tuple[bool | None, str]:
    """Compare a replayed SAC history with the actor parameter counts ``metrics.csv`` logged.

    Returns ``(True, what)`` if every logged count matches, ``(False, why)`` on the first mismatch,
    ``(None, why)`` when there is nothing to compare (no log, an OFENet in the deployed policy).
    """
    from edgerl.algos.run import read_metrics

    nets = ckpt["agent"].get("nets", {})
    actor = (nets.get("actor") or {}).get("state", {})
    trunk = sorted((int(k.split(".")[1]), v) for k, v in actor.items() if k.startswith("trunk.") and k.endswith(".weight"))
    metrics = run_dir / "metrics.csv"
    if "ofenet_state" in nets or not trunk or "mean.weight" not in actor or not metrics.is_file():
        return None, "no logged actor parameter counts to compare with"
    obs_dim, act_dim = int(trunk[0][1].shape[1]), int(actor["mean.weight"].shape[0])
    logged = [(int(float(r["step"])), int(float(r["params"]))) for r in read_metrics(metrics) if r.get("params")]
    for step, count in logged:
        widths = next(w for s, w in reversed(history) if s <= step)
        fan_in, total = obs_dim, 0
        for i, _ in trunk:
            out = widths.get(f"actor/trunk.{i}")
            if out is None:
                return None, f"actor layer trunk.{i} is not a pruned group"
            total, fan_in = total + fan_in * out + out, out
        total += 2 * (fan_in * act_dim + act_dim)  # mean and log-std heads
        if total != count:
            return False, f"metrics.csv logs {count:,} actor parameters at step {step:,}, the replay gives {total:,}"
    return True, f"the actor parameter counts logged in metrics.csv at {len(logged)} evaluation(s) match"


def width_history(ckpt: dict[str, Any], reconstruct: bool = True,
                  run_dir: Path | None = None) -> tuple[str | None, list[list[Any]] | None, str]:
    """``(hook, history, provenance)`` of a checkpoint; history None (with the reason) if there is none.

    A replayed gradual history is also checked against ``run_dir/metrics.csv`` when given.
    """
    hooks = ckpt.get("hooks") or {}
    for name in ("gates", "gradual"):
        state = hooks.get(name)
        if not state:
            continue
        hist = state.get("history")
        if hist:
            return name, [[int(s), _flat_widths(w)] for s, w in hist], f"recorded by the {name} hook"
        if name == "gradual" and reconstruct:
            hist, why = reconstruct_gradual(ckpt)
            if hist is not None and run_dir is not None:
                ok, what = check_replay(hist, ckpt, run_dir)
                if ok is False:
                    return name, None, f"replayed schedule disagrees with the run's log ({what}): not shown"
                why += f"; {what}" if ok else ""
            return name, hist, why
        return name, None, f"the {name} hook state has no width history"
    return None, None, f"no gradual or gates hook in the checkpoint (hooks: {sorted(hooks) or 'none'})"


def plot_widths(history: list[list[Any]], end: int, title: str, path: Path) -> None:
    """Step lines of surviving width per layer, from step 0 to ``end``."""
    plt = pyplot()
    net_of = {k: k.split("/", 1)[0] if "/" in k else k.split(".", 1)[0] for k in history[0][1]}
    nets = list(dict.fromkeys(net_of.values()))
    styles = ["-", "--", ":", "-."]
    steps = [s for s, _ in history] + [max(end, history[-1][0])]
    fig, ax = plt.subplots(figsize=(8, 5))
    for layer, net in net_of.items():
        widths = [w.get(layer, 0) for _, w in history] + [history[-1][1].get(layer, 0)]
        ax.step(steps, widths, where="post", label=layer, ls=styles[nets.index(net) % len(styles)])
    ax.set_xlabel("environment step")
    ax.set_ylabel("surviving units / channels")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    save_figure(plt, fig, path)


def default_runs(patterns: Sequence[str], root: Path) -> list[Path]:
    """Every run folder (holding ckpt.pt) under the folders matching ``patterns``."""
    return sorted({c.parent for pat in patterns for d in root.glob(pat) if d.is_dir() for c in d.rglob("ckpt.pt")})


def _slug(path: Path, root: Path) -> str:
    rel = path.resolve().relative_to(root) if path.resolve().is_relative_to(root) else Path(path.name)
    parts = rel.parts[1:] if rel.parts and rel.parts[0] == "runs" else rel.parts
    return "_".join(parts).replace("=", "")


def widths_doc(entries: list[dict[str, Any]], skipped: list[tuple[str, str]], command: str,
               explicit: bool) -> str:
    """The ``widths.md`` page."""
    out = ["# Surviving width per layer over training", "", "Generated by:", "", "```", command, "```", "",
           "From each run's `ckpt.pt`: `hooks.gates.history` (gate-based pruning) or `hooks.gradual.history` "
           "(gradual group pruning), `[[env step, {layer: width}], ...]`, drawn as step lines from step 0 to the "
           "checkpoint's last step. A gradual SAC run saved without a history (edgerl before the hook recorded "
           "one) is replayed from the schedule, original widths and `round_to` its checkpoint stores, with "
           "`GradualPruner`'s rule (every env step; shrink each group to `target_width(original, ratio)` when the "
           "ratio grows), and shown only if the replay ends at the checkpoint's actual layer widths; such curves "
           "are marked *reconstructed*. Runs: " + (
               "given by `--runs`." if explicit else "every run folder under `runs/compare*` and `runs/gates*` "
               "whose checkpoint has a gradual or gates hook state."), ""]
    if not entries:
        out += ["**No width history found.** Gradual runs record `hooks.gradual.history` only with an edgerl that "
                "stores it; gate runs come from `tools/measure_gates.py` (e.g. `" + TRAIN_COMMANDS["gates"] + "`).",
                ""]
    for e in entries:
        first, last = e["history"][0][1], e["history"][-1][1]
        out += [f"## {e['run']}", "", f"{e['hook']} pruning, {e['provenance']}; {len(e['history']) - 1} width "
                f"change(s) up to env step {e['end']:,}; versions: {e['versions']}.", "",
                f"![widths]({e['png']})", "", "| layer | start | end | kept |", "|---|---:|---:|---:|"]
        out += [f"| {k} | {first[k]} | {last.get(k, 0)} | {last.get(k, 0) / first[k]:.0%} |" for k in first]
        out.append("")
    if skipped:
        out += ["Run folders without a width curve:", ""] + [f"- `{r}`: {why}" for r, why in skipped] + [""]
    return "\n".join(out)


def run_widths(opts: ReportOptions, command: str, out: Path, root: Path, log: Log) -> list[str]:
    """Write ``widths.md`` and one ``widths-<run>.png`` per run with a history (``opts.runs``, or every
    run under the ``opts.compare``/``opts.gates`` globs relative to ``root``)."""
    runs = [Path(r) for r in opts.runs] if opts.runs else default_runs(list(opts.compare) + list(opts.gates), root)
    for old in out.glob("widths-*.png"):
        old.unlink()
    from edgerl.checkpoint import checkpoint_file

    entries, skipped, written = [], [], ["widths.md"]
    for run in runs:
        ckpt_path = checkpoint_file(run)
        name = str(run.resolve().relative_to(root)) if run.resolve().is_relative_to(root) else str(run)
        if not ckpt_path.is_file():
            skipped.append((name, f"no checkpoint at {ckpt_path}"))
            continue
        try:
            ckpt = read_raw_checkpoint(ckpt_path)
        except Exception as e:  # a file being replaced right now, damaged, or not an edgerl checkpoint
            skipped.append((name, f"unreadable checkpoint ({type(e).__name__}: {str(e)[:120]})"))
            continue
        hook, history, why = width_history(ckpt, reconstruct=not opts.no_reconstruct, run_dir=ckpt_path.parent)
        if history is None:
            if opts.runs or hook is not None:
                skipped.append((name, why))
            continue
        end = int(ckpt["counters"]["global_step"])
        png = f"widths-{_slug(run, root)}.png"
        kind = "reconstructed from the stored schedule" if why.startswith("reconstructed") else "recorded"
        plot_widths(history, end, f"{name}\n{hook} pruning, width history {kind}", out / png)
        written.append(png)
        entries.append({"run": name, "hook": hook, "history": history, "provenance": why, "end": end, "png": png,
                        "versions": versions_text(ckpt.get("versions") or {}) or "not recorded"})
    atomic_write_text(out / "widths.md", widths_doc(entries, skipped, command, bool(opts.runs)))
    log(f"widths: {len(entries)} run(s) plotted, {len(skipped)} without a curve")
    return written

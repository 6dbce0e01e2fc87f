"""The compression table: which compact policy keeps the dense policy's return, at what size.

Each *run* is one variant on one env and seed: train (or distil) with the CLI, then measure the
deployed policy: return on fixed env seeds, deployed parameters and MACs (counted on the exported
ONNX graph), ONNX Runtime p50 latency at batch 1, training wall-clock. A finished run is one small
JSON file in the results folder, so the table is resumable across machines: copy the folder,
rerun, and only missing runs are trained. Several workers (processes, or machines sharing the
runs folder) can fill one queue: each run is claimed by a lock on ``<runs>/<slug>.lock`` while
it trains, and released by the kernel if its worker dies. :func:`render_markdown` turns the
folder into the page.
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgerl.bench.returns import format_ci, mean_ci95
from edgerl.errors import EdgerlError
from edgerl.prune.gradual import target_width

SCALED = 512
"""Width of the scaled network (and of the critics beside small actors trained from scratch)."""
RATIO = 0.8
"""Channel ratio of gradual pruning."""


def pruned_width(width: int = SCALED, ratio: float = RATIO) -> int:
    """The width gradual pruning at ``ratio`` leaves of ``width`` units."""
    return target_width(width, ratio)


@dataclass(frozen=True)
class Variant:
    """One row of the table."""

    name: str
    label: str
    args: tuple[str, ...] = ()
    """``edgerl train`` flags (train variants)."""
    teacher: str | None = None
    """Distilled variants: the variant whose checkpoint teaches."""
    widths: tuple[int, ...] = ()
    """Distilled variants: the student's widths."""
    size: str | None = None
    """Compact variants: the small-from-scratch variant of the same deployed size (the baseline the
    goal asks it to match); None for dense and scaled."""


def variants() -> dict[str, Variant]:
    """Every variant, in the order of the table."""
    w = pruned_width()
    grad = ("--hidden", f"{SCALED},{SCALED}", "--prune", "gradual", "--final-ratio", str(RATIO))
    vs = [
        Variant("dense", "dense 256x256 (teacher)", ("--hidden", "256,256")),
        Variant("scaled", f"scaled {SCALED}x{SCALED}", ("--hidden", f"{SCALED},{SCALED}")),
        Variant("gradual-actor", f"gradual {RATIO} actor only ({w}x{w}, critics {SCALED})", (*grad, "--prune-nets", "actor"),
                size="scratch-gradual"),
        Variant("gradual-all", f"gradual {RATIO} all nets ({w}x{w})", (*grad, "--prune-nets", "all"), size="scratch-gradual"),
        Variant("gates", "OFENet + gates (target 0.75)", ("--hidden", "256,256", "--ofenet", "true", "--prune", "gates")),
        Variant("distill-gradual", f"distilled {w}x{w} from dense", teacher="dense", widths=(w, w), size="scratch-gradual"),
        Variant("distill-32", "distilled 32x32 from dense", teacher="dense", widths=(32, 32), size="scratch-32"),
        Variant("distill-scaled-gradual", f"distilled {w}x{w} from scaled", teacher="scaled", widths=(w, w),
                size="scratch-gradual"),
        Variant("distill-scaled-32", "distilled 32x32 from scaled", teacher="scaled", widths=(32, 32), size="scratch-32"),
        Variant("distill-32-from-102", f"distilled 32x32 from scratch {w}x{w} (critics {SCALED})", teacher="scratch-gradual",
                widths=(32, 32), size="scratch-32"),
        Variant("distill-gates-gradual", f"distilled {w}x{w} from OFENet + gates", teacher="gates", widths=(w, w),
                size="scratch-gradual"),
        Variant("distill-gates-32", "distilled 32x32 from OFENet + gates", teacher="gates", widths=(32, 32),
                size="scratch-32"),
        Variant("scratch-gradual", f"scratch {w}x{w} (critics {SCALED})", ("--hidden", f"{SCALED},{SCALED}", "--actor-hidden", f"{w},{w}")),
        Variant("scratch-32", f"scratch 32x32 (critics {SCALED})", ("--hidden", f"{SCALED},{SCALED}", "--actor-hidden", "32,32")),
    ]
    return {v.name: v for v in vs}


@dataclass(frozen=True)
class RunKey:
    env: str
    variant: str
    seed: int

    @property
    def slug(self) -> str:
        return f"{self.env.replace('/', '_')}/{self.variant}-s{self.seed}"


def result_path(results: Path, key: RunKey) -> Path:
    return results / f"{key.slug}.json"


_HELD: set[int] = set()
"""File descriptors of the claims this process holds (see :func:`claimed`)."""


def run_child(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd)`` that inherits the claims this process holds (:func:`claimed`)."""
    return subprocess.run(cmd, pass_fds=tuple(sorted(_HELD)), **kw)


def _cli(args: list[str], log: Path) -> None:
    """Run ``edgerl ARGS`` (this interpreter, this checkout), appending its output to ``log``. The
    child inherits the claims held here, so a run stays claimed while its trainer lives, even if
    this worker is killed first."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(f"$ edgerl {' '.join(args)}\n")
        f.flush()
        proc = run_child([sys.executable, "-m", "edgerl.cli", *args], stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"edgerl {' '.join(args[:2])} failed ({proc.returncode}); see {log}")


def train_run(key: RunKey, variant: Variant, steps: int, runs: Path) -> Path:
    """Train (or resume) one train variant; returns its run folder."""
    out = runs / key.slug
    log = runs / f"{key.slug}.log"
    if (out / "ckpt.pt").exists():
        from edgerl.checkpoint import load_checkpoint

        if int(load_checkpoint(out / "ckpt.pt")["counters"].get("global_step", 0)) >= steps:
            return out
        _cli(["train", "--resume", str(out), "--total-steps", str(steps), "--progress", "false"], log)
        return out
    # No checkpoint: nothing to continue, so what a run killed before its first checkpoint left goes.
    _cli(["train", "--env", key.env, "--seed", str(key.seed), "--overwrite", "--total-steps", str(steps), "--threads", "1",
          "--progress", "false", "--eval-every", str(max(steps // 10, 1)), "--eval-episodes", "5",
          "--checkpoint-every", "10000", "--out", str(out), *variant.args], log)
    return out


def distill_run(key: RunKey, variant: Variant, teacher: Path, runs: Path, distill_args: list[str]) -> Path:
    """Distil the teacher run into ``<runs>/<slug>/student.pt`` (restartable); returns its path."""
    out = runs / key.slug / "student.pt"
    if not out.exists():
        _cli(["distill", str(teacher), "-o", str(out), "--widths", ",".join(map(str, variant.widths)),
              "--seed", str(key.seed), "--eval-episodes", "0", "--progress", "false", "--threads", "1",
              *distill_args], runs / f"{key.slug}.log")
    return out


def measure(ckpt_path: Path, workdir: Path, episodes: int, eval_seed: int) -> dict[str, Any]:
    """Return, deployed size and ORT latency of a checkpoint's deployed policy (compacted first)."""
    import numpy as np

    from edgerl.bench.graph import count_graph
    from edgerl.bench.latency import Series, percentiles
    from edgerl.bench.latency import measure as time_series
    from edgerl.bench.returns import episode_returns
    from edgerl.bench.runners import bare_ort_runner
    from edgerl.checkpoint import load_checkpoint, save_checkpoint
    from edgerl.compact import compact_checkpoint
    from edgerl.envs import random_observations
    from edgerl.export import export_policy, policy_from_checkpoint
    from edgerl.export.observations import input_dtype, obs_space

    ckpt = load_checkpoint(ckpt_path)
    payload, _ = compact_checkpoint(ckpt, recorded_steps=64)
    compact = workdir / "compact.pt"
    save_checkpoint(compact, payload)
    policy = policy_from_checkpoint(payload)
    returns = episode_returns(policy, ckpt, episodes, eval_seed)
    onnx = workdir / "policy.onnx"
    export_policy(compact, onnx, recorded_steps=0)
    counts = count_graph(onnx)
    space = obs_space(ckpt)
    pool = list(random_observations(space, 256, np.random.default_rng(0)))
    with bare_ort_runner(onnx, 1, tuple(space["shape"]), input_dtype(space)) as timed:
        series = Series("ort", timed.call, pool)
        time_series([series], min_queries=2000, min_seconds=1.0)
    wall = float((ckpt.get("counters") or {}).get("wall_s") or math.nan)
    return {"returns": [float(r) for r in returns], "return_mean": float(np.mean(returns)),
            "params": counts.params, "macs": counts.macs, "ort_p50_us": percentiles(series.latencies())["p50_us"],
            "train_wall_s": wall, "widths": {n: _widths(m) for n, m in policy.nets().items()}}


def _widths(net: Any) -> list[int]:
    from edgerl.prune import layer_widths

    return list(layer_widths(net).values())


@contextlib.contextmanager
def claimed(runs: Path, key: RunKey) -> Iterator[bool]:
    """Hold the run's claim while inside (yields True), or yield False when another worker holds
    it. The claim is an exclusive ``flock`` on ``<runs>/<slug>.lock``, shared with the trainer this
    worker starts (:func:`_cli` passes it on): the kernel drops it once neither lives, so a dead
    worker never blocks the queue, and its orphaned trainer keeps the run until it ends."""
    import fcntl

    lock = runs / f"{key.slug}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        _HELD.add(f.fileno())
        try:
            yield True
        finally:
            _HELD.discard(f.fileno())
            fcntl.flock(f, fcntl.LOCK_UN)


def run_queue(queue: list[RunKey], steps: int, results: Path, runs: Path, episodes: int = 10,
              eval_seed: int = 10_000, distill_args: list[str] | None = None,
              log: Callable[[str], None] = print, on_result: Callable[[Path], None] | None = None,
              wait: bool = True, poll_s: float = 60.0) -> list[RunKey]:
    """Train/distil and measure every run of ``queue`` that has no result yet, in order; each
    finished run is written to ``results`` at once (and passed to ``on_result``). A run that fails
    with a one-line edgerl error is logged and left without a result; the queue goes on.

    A run another worker holds (or whose teacher it holds) is passed over and tried again after
    the rest: with ``wait`` every ``poll_s`` seconds until it is done, else it is returned among
    the runs left undone (the return value; empty when the queue is complete)."""
    vs = variants()
    pending = list(queue)
    while True:
        left = []
        for key in pending:
            if result_path(results, key).exists():
                continue
            v = vs[key.variant]
            teacher = RunKey(key.env, v.teacher, key.seed) if v.teacher else None
            # A student needs its teacher's claim only while the teacher may still train: a finished
            # teacher (its result written) is read-only, and its students distil side by side.
            needs = [key, *([teacher] if teacher and not result_path(results, teacher).exists() else [])]
            with contextlib.ExitStack() as stack:
                if not all(stack.enter_context(claimed(runs, k)) for k in needs):
                    left.append(key)
                    continue
                if not result_path(results, key).exists():  # another worker may have just finished it
                    try:
                        _run_one(key, steps, results, runs, episodes, eval_seed, distill_args, log, on_result)
                    except EdgerlError as e:  # one run's clear failure does not stop the queue
                        log(f"{key.slug}: failed, left without a result (rerun the table to retry): {e}")
        if not left or not wait:
            return left
        if len(left) == len([k for k in pending if not result_path(results, k).exists()]):
            log(f"waiting for runs other workers hold: {', '.join(k.slug for k in left)}")
            time.sleep(poll_s)
        pending = left


def _run_one(key: RunKey, steps: int, results: Path, runs: Path, episodes: int, eval_seed: int,
             distill_args: list[str] | None, log: Callable[[str], None],
             on_result: Callable[[Path], None] | None) -> None:
    """Train or distil one run (its claims held) and write its result."""
    from edgerl.runtime.fileio import atomic_write_text

    vs = variants()
    path, v, t0 = result_path(results, key), vs[key.variant], time.monotonic()
    log(f"{key.slug}: {'distilling' if v.teacher else 'training'} ({steps} steps)")
    extra: dict[str, Any] = {}
    if v.teacher:
        teacher = train_run(RunKey(key.env, v.teacher, key.seed), vs[v.teacher], steps, runs)
        ckpt = distill_run(key, v, teacher, runs, list(distill_args or []))
        from edgerl.checkpoint import load_checkpoint

        report = load_checkpoint(ckpt)["distill"]
        teacher_result = result_path(results, RunKey(key.env, v.teacher, key.seed))
        teacher_wall = json.loads(teacher_result.read_text())["train_wall_s"] if teacher_result.exists() else math.nan
        extra = {"distill_wall_s": report["wall_s"], "teacher_wall_s": teacher_wall, "distill_states": report["states"],
                 "distill_rounds": report["rounds"], "distill_steps": report["steps"]}
    else:
        ckpt = train_run(key, v, steps, runs) / "ckpt.pt"
    m = measure(ckpt, ckpt.parent, episodes, eval_seed)
    if v.teacher:
        m["train_wall_s"] = extra["distill_wall_s"]
    row = {"env": key.env, "variant": key.variant, "seed": key.seed, "steps": steps, "episodes": episodes,
           "eval_seed": eval_seed, **m, **extra, "elapsed_s": time.monotonic() - t0,
           "command": f"edgerl {' '.join(['train', *v.args]) if not v.teacher else 'distill'}"}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(row, indent=1) + "\n")
    log(f"{key.slug}: return {m['return_mean']:.1f}, {m['params']:,} params -> {path}")
    if on_result is not None:
        on_result(path)


def queue_status(queue: list[RunKey], results: Path, runs: Path) -> list[str]:
    """One line per run of ``queue``: done (its return), running (claimed by a worker here or on a
    machine sharing ``runs``; the step of its last checkpoint), or waiting. It probes each free
    claim by taking it for an instant: a worker that asks in that instant passes the run over and
    comes back to it."""
    import csv

    lines = []
    for key in queue:
        path = result_path(results, key)
        if path.exists():
            lines.append(f"{key.slug}: done, return {json.loads(path.read_text())['return_mean']:.1f}")
            continue
        with claimed(runs, key) as free:
            state = "waiting" if free else "running"
        step = None
        try:
            with open(runs / key.slug / "metrics.csv", newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step")]
            step = int(float(rows[-1]["step"])) if rows else None
        except (OSError, ValueError, KeyError):
            pass
        lines.append(f"{key.slug}: {state}" + (f", step {step:,} logged" if step is not None else ""))
    return lines


def retime_latency(results: Path, runs: Path, log: Callable[[str], None] = print, **timing: Any) -> int:
    """Re-time the ORT p50 (batch 1, 1 thread) of every finished run whose exported graph is still
    in ``runs``, all of one env interleaved in one measurement (:func:`time_interleaved`), so the
    column compares graphs timed under the same conditions rather than each during its own run's
    load. Each result keeps its first figure as ``ort_p50_us_at_run``; returns the rows re-timed."""
    import numpy as np

    from edgerl.bench.runners import bare_ort_runner, time_interleaved
    from edgerl.export.observations import input_dtype
    from edgerl.runtime.contract import read_contract
    from edgerl.runtime.fileio import atomic_write_text

    by_env: dict[str, list[tuple[Path, dict[str, Any], Path]]] = {}
    for path in sorted(results.glob("*/*.json")):
        row = json.loads(path.read_text())
        graph = runs / RunKey(row["env"], row["variant"], row["seed"]).slug / "policy.onnx"
        if graph.is_file() and (graph.parent / "contract.json").is_file():
            by_env.setdefault(row["env"], []).append((path, row, graph))
        else:
            log(f"{path.name}: no graph at {graph}; its ORT p50 stays as measured during its run")
    for env, entries in by_env.items():
        contract = read_contract(entries[0][2].parent / "contract.json")
        dtype = input_dtype({"dtype": str(contract.obs_dtype)})  # what the graph takes, as the runtime casts
        pool = np.random.default_rng(0).normal(size=(256, *contract.obs_shape)).astype(dtype)
        runners = [bare_ort_runner(g, 1, contract.obs_shape, dtype) for _, _, g in entries]
        log(f"{env}: timing {len(runners)} graphs interleaved")
        for (path, row, _), t in zip(entries, time_interleaved(runners, pool, **timing), strict=True):
            row.setdefault("ort_p50_us_at_run", row["ort_p50_us"])
            row.update(ort_p50_us=t["p50_us"], ort_p99_us=t["p99_us"], ort_timing=f"interleaved with {len(entries)} "
                       f"graphs of {env}")
            atomic_write_text(path, json.dumps(row, indent=1) + "\n")
    return sum(len(entries) for entries in by_env.values())


def load_results(results: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("*/*.json"))]


def _fmt_int(v: float) -> str:
    return f"{int(v):,}" if math.isfinite(v) else "-"


def summarise(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per env, one summary per variant (table order): return mean [95% interval] over seeds (over
    the episodes when only one seed finished), % of dense, size, latency, wall-clock."""
    order = list(variants())
    out: dict[str, list[dict[str, Any]]] = {}
    for env in sorted({r["env"] for r in rows}):
        env_rows = [r for r in rows if r["env"] == env]
        by_v = {v: [r for r in env_rows if r["variant"] == v] for v in order}
        dense = by_v.get("dense") or []
        dense_mean = statistics.fmean(r["return_mean"] for r in dense) if dense else math.nan
        summaries = []
        for v in order:
            rs = by_v[v]
            if not rs:
                continue
            per_seed = [r["return_mean"] for r in rs]
            ci = mean_ci95(per_seed) if len(rs) > 1 else mean_ci95(rs[0]["returns"])
            summaries.append({
                "variant": v, "label": variants()[v].label, "seeds": sorted(r["seed"] for r in rs),
                "steps": sorted({r["steps"] for r in rs}), "return": ci, "ci_over": "seeds" if len(rs) > 1 else "episodes",
                "pct_dense": 100 * ci["mean"] / dense_mean if dense_mean > 0 else math.nan,
                "params": statistics.fmean(r["params"] for r in rs), "macs": statistics.fmean(r["macs"] for r in rs),
                "ort_p50_us": statistics.median(r["ort_p50_us"] for r in rs),
                "ort_retimed": all("ort_timing" in r for r in rs),
                "wall_s": statistics.fmean(r["train_wall_s"] for r in rs),
            })
        out[env] = summaries
    return out


GOAL_SHRINK = 5.0
"""The goal's compact policy has at least this many times fewer deployed parameters than dense."""
GOAL_RETURN = 0.97
"""... and returns at least this share of the best dense policy (dense 256x256 or scaled)."""


def goal_check(summaries: list[dict[str, Any]]) -> str:
    """One env's verdict on the goal: a compact policy with >= 5x fewer deployed parameters than
    dense 256x256 that returns >= 97% of the best dense policy and at least as much as
    small-from-scratch of its size, all means over the same seeds (a comparison over different
    seed sets is reported as pending, not judged). Gates have no scratch baseline of their size
    and are not judged."""
    by = {s["variant"]: s for s in summaries}
    if "dense" not in by:
        return "no dense run yet"
    dense = [by[v] for v in ("dense", "scaled") if v in by]
    bad = [s["variant"] for s in dense if not math.isfinite(s["return"]["mean"])]
    if bad:
        return f"not judged: the {', '.join(bad)} return is not finite"
    best = best_dense(summaries)
    assert best is not None  # dense is present and finite
    top = best["return"]["mean"]
    if not top > 0:
        return f"not judged: the best dense return ({top:.0f}) is not positive, so a share of it means nothing"
    bar = GOAL_RETURN * top
    vs = variants()
    verdicts, met = [], []
    for s in summaries:
        v = vs[s["variant"]]
        if v.size is None or not s["params"] * GOAL_SHRINK <= by["dense"]["params"]:
            continue
        ret, scratch = s["return"]["mean"], by.get(v.size)
        same = scratch is not None and set(s["seeds"]) == set(scratch["seeds"]) == {x for d in dense for x in d["seeds"]}
        if scratch is None:
            beats = "scratch not run"
        elif not same:
            beats = f"pending: seeds differ from scratch ({','.join(map(str, scratch['seeds']))}) or dense"
        else:
            beats = f"{'>=' if ret >= scratch['return']['mean'] else '<'} scratch {scratch['return']['mean']:.0f}"
        verdicts.append(f"{s['variant']} {ret:.0f} ({100 * ret / top:.0f}% of {best['variant']}, {beats}, "
                        f"seeds {','.join(map(str, s['seeds']))})")
        if same and ret >= bar and ret >= scratch["return"]["mean"]:  # type: ignore[index]
            met.append(s["variant"])
    head = f"**met** by {', '.join(met)}" if met else "**not met**"
    return (f"{head}: bar {bar:.0f} = {GOAL_RETURN:.0%} of {best['variant']} {top:.0f}; "
            + ("; ".join(verdicts) if verdicts else "no compact run yet"))


def dense_summary(summaries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The env's dense 256x256 row (the size yardstick), or None without one."""
    return next((s for s in summaries if s["variant"] == "dense"), None)


def best_dense(summaries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The env's best dense policy (dense 256x256 or scaled, by mean return), or None without one."""
    dense = [s for s in summaries if s["variant"] in ("dense", "scaled") and math.isfinite(s["return"]["mean"])]
    return max(dense, key=lambda s: s["return"]["mean"]) if dense else None


def overview(by_env: dict[str, list[dict[str, Any]]]) -> list[str]:
    """A variant x env table of each variant's return as a share of the env's best dense policy
    (the goal's yardstick), with the seeds behind it, and its deployed-parameter shrink."""
    envs = list(by_env)
    best = {env: best_dense(ss) for env, ss in by_env.items()}
    dense = {env: dense_summary(ss) for env, ss in by_env.items()}
    lines = ["| variant | " + " | ".join(envs) + " | fewer params than dense (least over envs) |", "|---|" + "---:|" * (len(envs) + 1)]
    for v, variant in variants().items():
        cells, shrink = [], []
        for env in envs:
            s = next((x for x in by_env[env] if x["variant"] == v), None)
            b, d = best[env], dense[env]
            if s is None or b is None or not b["return"]["mean"] > 0:
                cells.append("-")
                continue
            cells.append(f"{100 * s['return']['mean'] / b['return']['mean']:.0f}% ({len(s['seeds'])})")
            if d is not None and s["params"] > 0:
                shrink.append(d["params"] / s["params"])
        if any(c != "-" for c in cells):
            least = min(shrink, default=math.nan)
            ratio = ("-" if not math.isfinite(least) else f"{least:.1f}x fewer" if least > 1.05
                     else f"{1 / least:.1f}x more" if least < 0.95 else "1x")
            lines.append(f"| {variant.label} | " + " | ".join(cells) + f" | {ratio} |")
    return lines


def render_markdown(rows: list[dict[str, Any]], command: str, pending: list[str] | None = None) -> str:
    """The page ``docs/benchmarks/compression.md``."""
    episodes, seed = (rows[0]["episodes"], rows[0]["eval_seed"]) if rows else (10, 10_000)
    lines = ["# Compression that keeps the return", "",
             "Each row: SAC on the env, the deployed policy measured after `edgerl compact` and `edgerl export`. "
             f"Return: mean of the evaluation returns ({episodes} episodes, env seeds {seed}..{seed + episodes - 1}, "
             "the same for every row) with its 95% t-interval over seeds, or over the episodes where one seed finished. Params and "
             "MACs: counted on the exported ONNX graph (what the robot runs). ORT p50: ONNX Runtime, 1 thread, "
             "batch 1; the graphs of one env are re-timed together, interleaved in one run (`--retime`); a "
             "figure marked * was timed alone during its own run on the shared machine. Wall-clock: training (distilled rows: "
             "the distillation only; add the teacher's).", "",
             f"Regenerate (resumes from `docs/benchmarks/compression/results/`): `{command}`", ""]
    by_env = summarise(rows)
    if by_env:
        lines += ["## At a glance", "", "Return as a share of each env's best dense policy (dense 256x256 or scaled, "
                  "whichever returned more), with the number of seeds behind it; the goal asks >= "
                  f"{GOAL_RETURN:.0%} at >= {GOAL_SHRINK:g}x fewer params.", "", *overview(by_env), ""]
    for env, summaries in by_env.items():
        lines += [f"## {env}", "", "| variant | seeds | steps | return (mean [95% interval]) | % of dense | "
                  "deployed params | MACs | ORT p50 us | wall-clock s |", "|---|---|---:|---|---:|---:|---:|---:|---:|"]
        for s in summaries:
            pct = f"{s['pct_dense']:.0f}%" if math.isfinite(s["pct_dense"]) else "-"
            lines.append(f"| {s['label']} | {','.join(map(str, s['seeds']))} | {','.join(map(str, s['steps']))} | "
                         f"{format_ci(s['return'])} | {pct} | {_fmt_int(s['params'])} | {_fmt_int(s['macs'])} | "
                         f"{s['ort_p50_us']:.1f}{'' if s['ort_retimed'] else '*'} | {s['wall_s']:.0f} |")
        lines += ["", f"Goal ({GOAL_SHRINK:g}x fewer deployed params than dense, >= {GOAL_RETURN:.0%} of the best dense, "
                      f">= scratch of its size): {goal_check(summaries)}", ""]
    if pending:
        lines += ["## Not measured yet", "", "Runs the command above would train next, in order:", "",
                  *(f"- {p}" for p in pending), ""]
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    """Return (% of dense) against deployed parameters, one panel per env, with the goal's corner
    marked: the return bar (97% of the best dense policy) and the size bar (5x fewer parameters
    than dense); False without matplotlib."""
    from matplotlib.ticker import NullFormatter

    from edgerl.bench.plotting import pyplot

    plt = pyplot()
    if plt is None:
        return False
    summaries = summarise(rows)
    if not summaries:
        return False
    fig, axes = plt.subplots(1, len(summaries), figsize=(5.5 * len(summaries), 4.2), squeeze=False)
    for ax, (env, ss) in zip(axes[0], summaries.items(), strict=True):
        for s in ss:
            ax.scatter(s["params"], s["pct_dense"], s=40)
            ax.annotate(s["variant"], (s["params"], s["pct_dense"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: a narrow range labels every minor tick
        ax.axhline(100, color="grey", lw=0.8, ls="--")
        best, dense = best_dense(ss), dense_summary(ss)
        if best is not None and dense is not None and dense["return"]["mean"] > 0:
            ax.axhline(100 * GOAL_RETURN * best["return"]["mean"] / dense["return"]["mean"], color="tab:red", lw=0.8,
                       ls=":", label=f"goal: {GOAL_RETURN:.0%} of {best['variant']}")
            ax.axvline(dense["params"] / GOAL_SHRINK, color="tab:red", lw=0.8, ls="-.",
                       label=f"goal: {GOAL_SHRINK:g}x fewer params")
            ax.legend(fontsize=7, loc="best")
        ax.set_xlabel("deployed parameters")
        ax.set_ylabel("return, % of dense 256x256")
        ax.set_title(env)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True

#!/usr/bin/env python
"""Regenerate ``docs/benchmarks/``: latency vs MACs of dense and group-pruned policies, return vs
deployed parameters of the training comparisons, and surviving width per layer over training.

    .venv/bin/python tools/make_reports.py                               # everything
    .venv/bin/python tools/make_reports.py --min-queries 2000 --min-seconds 3
    .venv/bin/python tools/make_reports.py --parts training,widths       # no timing
    .venv/bin/python tools/make_reports.py --parts widths --runs runs/compare/Hopper-v5/gradual-0.8/seed1

Parts (``--parts``):

* ``latency``: freshly initialised SAC actors (obs 17 -> hidden -> act 6, HalfCheetah's dims) and
  Impala-CNN PPO networks (3x64x64 frames, 15 actions) are pruned by groups (L1, ``GradualPruner``)
  to each ``--ratios`` channel ratio (Impala also with ``round_to``), written as policy
  checkpoints and timed by ``edgerl.bench.run_bench``: batch 1, ``--threads`` thread(s), every
  model of a family interleaved with its dense baseline, per backend. Weights are random: latency
  depends on shapes only. Writes ``latency.md``, ``latency_vs_macs.png`` and ``latency.json``
  (the bench reports, with device and library versions).
* ``training``: ``runs/compare*/results.json`` (``tools/compare_pruning.py``) and
  ``runs/gates*/results.json`` (``tools/measure_gates.py``) as tables and a plot of return vs
  deployed actor parameters per environment: ``training.md``, ``training_return_vs_params.png``.
* ``widths``: the width history a run's ``ckpt.pt`` keeps (``hooks.gates.history`` or
  ``hooks.gradual.history``) as step lines per layer: ``widths.md``, ``widths-<run>.png``. A
  gradual SAC run saved without a history is reconstructed from its stored schedule (exactly what
  ``GradualPruner`` does on every SAC step) and shown only if the reconstruction ends at the
  checkpoint's actual widths; the doc says which curves are reconstructed.

``README.md`` indexes the docs. Every number in the docs is measured (or read from run files) by
the command that each doc names.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PARTS = ("latency", "training", "widths")
OBS_DIM, ACT_DIM = 17, 6
"""HalfCheetah-v5's observation and action sizes (the SAC actor families)."""
FRAME = (3, 64, 64)
N_ACTIONS = 15
"""Procgen-like frames and action count (the Impala families)."""
IMPALA_HIDDEN = [256]
Log = Callable[[str], None]


# ----------------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class Family:
    """Networks of one architecture, timed together against their dense member."""

    key: str
    """Short name used in labels and ``--families``."""
    title: str
    """Human-readable description."""
    kind: str
    """``mlp`` (SAC actor) or ``impala`` (PPO ActorCriticCNN)."""
    size: tuple[int, ...]
    """Hidden widths of the MLP, or ``(tau,)`` for Impala."""


FAMILIES = {
    "sac256": Family("sac256", "SAC actor 17-256-256-6", "mlp", (256, 256)),
    "sac1024": Family("sac1024", "SAC actor 17-1024-1024-6", "mlp", (1024, 1024)),
    "impala1": Family("impala1", "Impala-CNN tau=1, 3x64x64, 15 actions", "impala", (1,)),
    "impala3": Family("impala3", "Impala-CNN tau=3, 3x64x64, 15 actions", "impala", (3,)),
}


@dataclass(frozen=True)
class Variant:
    """One model of a family: a channel ratio and an optional width rounding."""

    family: Family
    ratio: float = 0.0
    round_to: int | None = None

    @property
    def label(self) -> str:
        """Unique name, also the checkpoint's file stem."""
        tag = "dense" if self.ratio == 0 else f"{self.ratio:g}"
        return f"{self.family.key}-{tag}" + (f"-rt{self.round_to}" if self.round_to else "")


def variants(family: Family, ratios: Sequence[float], round_to: int) -> list[Variant]:
    """The dense model, then one variant per ratio (and per ratio with ``round_to`` for conv nets)."""
    out = [Variant(family)]
    for r in ratios:
        out.append(Variant(family, r))
        if round_to > 1 and family.kind == "impala":
            out.append(Variant(family, r, round_to))
    return out


def _space_info(env_id: str, obs: Any, act: Any) -> dict[str, Any]:
    from edgerl.envs import describe_space

    return {"id": env_id, "observation_space": describe_space(obs), "action_space": describe_space(act)}


def build_variant(v: Variant, seed: int = 0) -> tuple[str, dict[str, Any], Any, Any]:
    """A freshly initialised network of ``v``, pruned by groups to its ratio.

    Returns:
        ``(algo, env_info, network, example_input)`` for a policy checkpoint.
    """
    import numpy as np
    import torch
    from gymnasium import spaces

    from edgerl.prune.gradual import GradualPruner
    from edgerl.prune.schedule import OneShotSchedule

    torch.manual_seed(seed)
    if v.family.kind == "mlp":
        from edgerl.nets.mlp import SquashedGaussianActor

        net = SquashedGaussianActor(OBS_DIM, ACT_DIM, list(v.family.size))
        example: Any = net.example_inputs()
        env = _space_info(f"synthetic-obs{OBS_DIM}-act{ACT_DIM}",
                          spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float64), spaces.Box(-1.0, 1.0, (ACT_DIM,)))
        algo = "sac"
    else:
        from edgerl.nets.impala import ActorCriticCNN, image_encoder_spec

        net = ActorCriticCNN(image_encoder_spec("impala", FRAME, v.family.size[0], IMPALA_HIDDEN), N_ACTIONS)
        example = (torch.zeros(2, *FRAME, dtype=torch.uint8),)
        env = _space_info(f"synthetic-{'x'.join(map(str, FRAME))}-uint8-discrete{N_ACTIONS}",
                          spaces.Box(0, 255, FRAME, np.uint8), spaces.Discrete(N_ACTIONS))
        algo = "ppo"
    if v.ratio > 0:
        pruner = GradualPruner({"net": (net, example, net.heads())}, optimizers=[],
                               schedule=OneShotSchedule(v.ratio, 1), round_to=v.round_to)
        pruner.step(0)
    return algo, env, net.eval(), example


def net_widths(net: Any) -> list[Any]:
    """Hidden widths (MLP) or per-stage stream channels + hidden (Impala) of a built network."""
    spec = net.spec()
    if "hidden" in spec and "encoder" not in spec:
        return list(spec["hidden"])
    enc = spec["encoder"]["kwargs"]
    return [[s[0] for s in enc["channels"]], [s[1:] for s in enc["channels"]], enc["hidden"]]


def write_policy(v: Variant, path: Path, seed: int = 0) -> dict[str, Any]:
    """Save ``v`` as a ``kind: "policy"`` checkpoint; returns its description for the report."""
    from edgerl.checkpoint import save_checkpoint
    from edgerl.export.policy import policy_checkpoint_payload

    algo, env, net, _ = build_variant(v, seed)
    config = {"run": {"env": env["id"], "algo": algo},
              "algo": {"hidden": list(v.family.size)} if v.family.kind == "mlp" else {"width": v.family.size[0]},
              "prune": {"prune": "gradual" if v.ratio else "none", "final_ratio": v.ratio, "importance": "l1",
                        "round_to": v.round_to or 1}}
    name = "actor" if algo == "sac" else "net"
    save_checkpoint(path, policy_checkpoint_payload(algo, env, config, {name: net},
                                                    counters={"global_step": 0},
                                                    source={"checkpoint": None, "kind": "synthetic"}))
    return {"label": v.label, "family": v.family.key, "ratio": v.ratio, "round_to": v.round_to,
            "widths": net_widths(net), "path": path.name}


# ---------------------------------------------------------------------------------------- latency
def time_family(family: Family, args: argparse.Namespace, workdir: Path, log: Log) -> dict[str, Any]:
    """Build, save and time one family (dense baseline + pruned variants, interleaved).

    A ``round_to`` variant whose widths equal another variant's is not timed twice (listed as a duplicate).
    """
    import os

    from edgerl.bench.api import run_bench

    described, duplicates, paths = [], [], []
    for v in variants(family, args.ratios, args.round_to):
        t0 = time.perf_counter()
        path = workdir / f"{v.label}.pt"
        d = write_policy(v, path, args.seed)
        twin = next((x for x in described if x["widths"] == d["widths"]), None)
        if twin is not None:
            duplicates.append({"label": v.label, "same_as": twin["label"], "widths": d["widths"]})
            log(f"  {v.label}: same widths as {twin['label']}, not timed again")
            continue
        described.append(d)
        paths.append(path)
        log(f"  built {v.label}: widths {d['widths']} ({time.perf_counter() - t0:.1f} s)")
    load_before = os.getloadavg()
    report = run_bench(paths[1:], baseline=paths[0], backends=args.backends, batches=(1,), threads=args.threads,
                       min_queries=args.min_queries, min_seconds=args.min_seconds, warmup=args.warmup,
                       rounds=args.rounds, seed=args.seed, overhead=False, log=lambda s: log(f"  {s}"))
    load = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]}
    return {"family": family.key, "title": family.title, "variants": described, "duplicates": duplicates,
            "loadavg": load, "report": report}


def latency_rows(families: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per family, model and backend, with the deployed-graph counts and ratios vs dense."""
    rows = []
    for fam in families:
        rep = fam["report"]
        models = {m["label"]: m for m in rep["models"]}
        by_file = {d["path"]: d for d in fam["variants"]}
        base = {r["backend"]: r for r in rep["results"] if r["role"] == "baseline"}
        for r in rep["results"]:
            m = models[r["model"]]
            d = by_file[Path(m["path"]).name]
            b = base.get(r["backend"])
            rows.append({
                "family": fam["family"], "title": fam["title"], "model": d["label"], "ratio": d["ratio"],
                "round_to": d["round_to"], "widths": d["widths"], "backend": r["backend"],
                "params": m["graph_params"] if m["graph_params"] is not None else m["params"],
                "macs": m["graph_macs"] if m["graph_macs"] is not None else m["macs"],
                "module_params": m["params"], "module_macs": m["macs"],
                **{k: r[k] for k in ("p50_us", "p90_us", "p99_us", "max_us", "n")},
                "vs_dense": {p: r[f"{p}_us"] / b[f"{p}_us"] for p in ("p50", "p90", "p99")} if b else None,
                "source": "run_bench",
            })
    return sort_rows(rows)


def sort_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Family order kept; within it by backend, then dense first, ratio ascending, rounded after plain."""
    fams = list(dict.fromkeys(r["family"] for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    return sorted(rows, key=lambda r: (fams.index(r["family"]), backends.index(r["backend"]), r["ratio"],
                                       r["round_to"] or 0))


def impala_json_rows(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows of a ``tools/bench_impala.py`` report (3x64x64 only; bare ORT session, no torch)."""
    report = json.loads(path.read_text())
    rows, dense = [], {}
    picked = [r for r in report["rows"] if tuple(r["shape"]) == FRAME]
    if not picked:
        raise SystemExit(f"{path}: no rows at input {'x'.join(map(str, FRAME))}; rerun tools/bench_impala.py "
                         "with --shapes 3x64x64 or drop --impala-json")
    for r in picked:
        if r["ratio"] == 0:
            dense[r["tau"]] = r
    for r in picked:
        b = dense.get(r["tau"])
        tag = "dense" if r["ratio"] == 0 else f"{r['ratio']:g}"
        rows.append({
            "family": f"impala{r['tau']}", "title": f"Impala-CNN tau={r['tau']}, 3x64x64, {N_ACTIONS} actions",
            "model": f"impala{r['tau']}-{tag}" + (f"-rt{r['round_to']}" if r["round_to"] else ""),
            "ratio": r["ratio"], "round_to": r["round_to"], "widths": [r["channels"], r["inner"], r["hidden"]],
            "backend": "ort-cpu (bare)", "params": r["params"], "macs": r["macs"],
            **{k: r[k] for k in ("p50_us", "p90_us", "p99_us", "max_us", "n")},
            "vs_dense": {p: r[f"{p}_us"] / b[f"{p}_us"] for p in ("p50", "p90", "p99")} if b else None,
            "source": "tools/bench_impala.py",
        })
    return sort_rows(rows), report


def _us(v: float) -> str:
    return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def _widths_text(w: list[Any]) -> str:
    if w and isinstance(w[0], list):  # Impala: stream channels, inner widths, hidden
        inner = " ".join("/".join(map(str, x)) for x in w[1])
        return f"streams {'/'.join(map(str, w[0]))}; inner {inner}; fc {w[2][0]}"
    return "-".join(map(str, w))


def latency_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of one family's rows (grouped by backend)."""
    lines = ["| model | ratio | round_to | widths | backend | params | MACs | p50 us | p90 us | p99 us "
             "| p50 / dense | p99 / dense | n |",
             "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        vs = r["vs_dense"]
        ratios = f"{vs['p50']:.3f} | {vs['p99']:.3f}" if vs else "- | -"
        lines.append(
            f"| {r['model']} | {r['ratio']:g} | {r['round_to'] or '-'} | {_widths_text(r['widths'])} "
            f"| {r['backend']} | {r['params']:,} | {r['macs']:,} | {_us(r['p50_us'])} | {_us(r['p90_us'])} "
            f"| {_us(r['p99_us'])} | {ratios} | {r['n']:,} |")
    return "\n".join(lines)


def _pyplot() -> Any:
    from edgerl.bench.plotting import pyplot

    plt = pyplot()
    if plt is None:
        raise SystemExit("the plots need matplotlib: pip install matplotlib (or .venv/bin/pip install matplotlib)")
    return plt


def plot_latency(rows: list[dict[str, Any]], path: Path) -> None:
    """p50 (marker) with p99 (top of the error bar) vs deployed MACs, log-log, one panel per backend."""
    plt = _pyplot()
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    fig, axes = plt.subplots(1, len(backends), figsize=(6.5 * len(backends), 5.2), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fams = list(dict.fromkeys(r["family"] for r in rows))
    for ax, backend in zip(axes[0], backends, strict=True):
        for i, fam in enumerate(fams):
            pts = sorted((r for r in rows if r["backend"] == backend and r["family"] == fam), key=lambda r: r["macs"])
            if not pts:
                continue
            c = colors[i % len(colors)]
            for rounded in (False, True):
                sel = [r for r in pts if bool(r["round_to"]) == rounded]
                if not sel:
                    continue
                x = [r["macs"] for r in sel]
                y = [r["p50_us"] for r in sel]
                err = [[0.0] * len(sel), [r["p99_us"] - r["p50_us"] for r in sel]]
                ax.errorbar(x, y, yerr=err, color=c, marker="s" if rounded else "o", capsize=3, elinewidth=0.8,
                            mfc="none" if rounded else c, ls=":" if rounded else "-", lw=1.2,
                            label=f"{fam}" + (f" round_to={sel[0]['round_to']}" if rounded else ""))
                for r in sel:
                    ax.annotate(f"{r['ratio']:g}" if r["ratio"] else "dense", (r["macs"], r["p50_us"]),
                                textcoords="offset points", xytext=(4, -10 if rounded else 4), fontsize=7, color=c)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("MACs per inference (deployed graph)")
        ax.set_ylabel("latency, us (marker p50, bar top p99)")
        ax.set_title(f"{backend}, batch 1")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def device_text(device: dict[str, Any], verb: str = "Measured") -> str:
    """The device line plus every recorded library version."""
    from edgerl.bench.report import device_line

    versions = ", ".join(f"{k} {v}" for k, v in device.get("versions", {}).items())
    return f"{device_line(device)}. {verb} {device.get('date')}. Library versions: {versions}."


def latency_doc(data: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The ``latency.md`` page."""
    cfg = data["config"]
    out = ["# Latency vs MACs: dense and group-pruned policies, batch 1", "",
           "Generated by:", "", "```", data["command"], "```", "",
           "Freshly initialised networks (latency depends on shapes, not weights), pruned by groups with "
           "`GradualPruner` (L1 group importance, one-shot to the channel ratio; output heads never pruned), saved "
           "as policy checkpoints and timed with `edgerl.bench.run_bench`: single stream, batch 1, "
           f"{cfg['threads']} intra-op thread(s), warm-up {cfg['warmup']} calls, at least {cfg['min_queries']} "
           f"calls and {cfg['min_seconds']} s per model and backend, {cfg['rounds']} interleaved rounds of "
           "alternating order (every family's models interleaved with its dense baseline). Percentiles are over "
           "all timed calls; ratios are model / dense of the same family on the same backend.",
           "",
           "- **sac** families: `SquashedGaussianActor` 17 -> hidden -> 6 (HalfCheetah-v5 sizes), deployed graph "
           "obs -> actor mean -> tanh -> action rescale. **impala** families: `ActorCriticCNN` (Impala-CNN, Linear "
           "256, 15 actions) on uint8 3x64x64 frames, deployed graph frames -> logits -> argmax.",
           "- `torch` is the eager policy (`torch.inference_mode`); `ort-cpu` is edgerl's ONNX Runtime backend "
           "(IO binding, ORT_ENABLE_ALL, sequential).",
           "- params/MACs are those of the deployed ONNX graph (the SAC log-std head and the PPO critic are not "
           "in it); eager torch runs the whole module (`module_params`/`module_macs` in `latency.json`).",
           "",
           "![latency vs MACs](latency_vs_macs.png)", ""]
    fams = {f["family"]: f for f in data["families"]}
    for key in dict.fromkeys(r["family"] for r in rows):
        sel = [r for r in rows if r["family"] == key]
        out += [f"## {key}: {sel[0]['title']}", "", latency_table(sel), ""]
        fam = fams.get(key)
        if fam is None:
            continue
        rep = fam["report"]
        load = fam.get("loadavg")
        cores = rep["device"].get("cpu_count") or 0
        busy = bool(load) and cores > 0 and max(load["before"][0], load["after"][0]) > cores
        out.append(f"Device: {device_text(rep['device'])}" + (
            f" Load average (1/5/15 min) before timing {load['before']}, after {load['after']}." if load else "") + (
            f" The 1-minute load exceeded the {cores} cores: p90/p99 include time the process waited for a core "
            "(other processes' time slices), so compare p50s and ratios." if busy else ""))
        out.append("")
        out += [f"- {d['label']}: same widths as {d['same_as']}, not timed again" for d in fam.get("duplicates", [])]
        out += [f"- skipped {s['backend']}" + (f" for {s['model']}" if s["model"] else "") + f": {s['reason']}"
                for s in rep["skipped"]]
        out += [f"- note: {n}" for n in rep.get("notes", [])]
        if out[-1]:
            out.append("")
    if data.get("impala_json"):
        ij = data["impala_json"]
        out += [f"**impala** rows with backend `ort-cpu (bare)` come from `{ij['path']}` (made by "
                f"`{ij['command']}`: bare `InferenceSession.run`, not timed by this script; its params/MACs count "
                "the torch module, critic head included); "
                f"{device_text(ij['device'])}", ""]
    out += ["Absolute times on a shared machine are noisy; the interleaved ratios are steadier. Raw bench "
            "reports (every percentile, model and device entry): [latency.json](latency.json).", ""]
    return "\n".join(out)


def run_latency(args: argparse.Namespace, command: str, out: Path, log: Log) -> list[str]:
    """Time every family (or reuse ``--impala-json`` for Impala) and write the latency docs."""
    import torch

    torch.set_num_threads(args.threads)
    data: dict[str, Any] = {"command": command, "families": [],
                            "config": {k: getattr(args, k) for k in ("backends", "threads", "min_queries",
                                                                     "min_seconds", "warmup", "rounds", "seed",
                                                                     "ratios", "round_to")}}
    chosen = [FAMILIES[k] for k in args.families]
    use_json = bool(args.impala_json) and any(f.kind == "impala" for f in chosen)
    if use_json:
        ij_rows, ij = impala_json_rows(Path(args.impala_json))
        chosen = [f for f in chosen if f.kind != "impala"]
        data["impala_json"] = {"path": args.impala_json, "command": ij.get("command"), "device": ij["device"]}
    with tempfile.TemporaryDirectory(prefix="make-reports-") as tmp:
        for fam in chosen:
            log(f"latency: {fam.title}")
            data["families"].append(time_family(fam, args, Path(tmp), log))
    rows = latency_rows(data["families"]) + (ij_rows if use_json else [])
    (out / "latency.json").write_text(json.dumps({**data, "rows": rows}, indent=1) + "\n")
    plot_latency(rows, out / "latency_vs_macs.png")
    (out / "latency.md").write_text(latency_doc(data, rows))
    return ["latency.md", "latency_vs_macs.png", "latency.json"]


# --------------------------------------------------------------------------------------- training
def _mean_sd(v: list[float]) -> str:
    """``mean ± std``; a single value has no spread to report (not a spread of 0)."""
    return f"{statistics.mean(v):,.0f} ± {statistics.stdev(v):,.0f}" if len(v) > 1 else f"{v[0]:,.0f}"


def run_status(folder: Path) -> list[tuple[str, int, int | None]]:
    """``(run folder, global_step, total_steps)`` of every run folder under ``folder`` (a folder with a
    ``train.log`` or ``ckpt.pt``); step -1 when it has no readable checkpoint yet."""
    import torch

    out = []
    runs = sorted({p.parent for pat in ("train.log", "ckpt.pt") for p in folder.rglob(pat)})
    for run in runs:
        ckpt = run / "ckpt.pt"
        if not ckpt.is_file():
            out.append((f"{run.relative_to(folder)} (no checkpoint yet)", -1, None))
            continue
        try:
            c = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as e:  # a checkpoint being replaced right now, or damaged
            out.append((f"{ckpt.parent.relative_to(folder)} (unreadable: {type(e).__name__})", -1, None))
            continue
        total = (c.get("config", {}).get("run") or {}).get("total_steps")
        out.append((str(ckpt.parent.relative_to(folder)), int(c["counters"]["global_step"]), total))
    return out


def _versions_of(folder: Path) -> str | None:
    """Library versions recorded in the first checkpoint under ``folder``."""
    import torch

    for ckpt in sorted(folder.rglob("ckpt.pt")):
        try:
            v = torch.load(ckpt, map_location="cpu", weights_only=True).get("versions") or {}
        except Exception:
            continue
        return ", ".join(f"{k} {x}" for k, x in v.items())
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
    plt = _pyplot()
    envs = list(dict.fromkeys(p["env"] for p in pts))
    fig, axes = plt.subplots(1, len(envs), figsize=(6.5 * len(envs), 5), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, env in zip(axes[0], envs, strict=True):
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


TRAIN_COMMANDS = {
    "compare": ".venv/bin/python tools/compare_pruning.py --envs Hopper-v5,HalfCheetah-v5 --steps 100000 "
               "--seeds 1,2,3 --jobs 2 --out runs/compare",
    "gates": ".venv/bin/python tools/measure_gates.py --envs Hopper-v5,HalfCheetah-v5 --steps 300000 "
             "--seeds 1,2,3 --jobs 2 --gate-target 0.75 --out runs/gates",
}


def _missing_lines(src: Source, root: Path) -> list[str]:
    rel = src.folder.relative_to(root) if src.folder.is_relative_to(root) else src.folder
    status = run_status(src.folder)
    done = sum(1 for _, s, t in status if t is not None and s >= t)
    tool = "compare_pruning" if src.tool == "compare" else "measure_gates"
    lines = [f"**{rel}**: no `results.json` yet (`tools/{tool}.py` writes it once every run has finished); "
             f"{done} of the {len(status)} run folders started so far have finished (the tool may start more):", ""]
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
        rel = src.folder.relative_to(root) if src.folder.is_relative_to(root) else src.folder
        if not src.results:
            out += _missing_lines(src, root)
            continue
        a = src.args or {}
        made_by = f"tools/{'compare_pruning' if src.tool == 'compare' else 'measure_gates'}.py"
        settings = ", ".join(f"{k}={a[k]}" for k in ("envs", "steps", "seeds", "dense", "scaled", "ratios",
                                                     "gate_lambda", "round_to", "prune_every", "eval_every",
                                                     "eval_episodes", "learning_starts") if k in a)
        out += [f"## {rel}", "", f"Made by `{made_by}` ({settings}). Training library versions (first "
                f"checkpoint): {_versions_of(src.folder) or 'not recorded'}.", "",
                training_table(points(src), src.tool), ""]
    if not any(s.tool == "gates" for s in sources):
        out += ["No `runs/gates*` results (gate-based pruning). Produce them with:", "", "```",
                TRAIN_COMMANDS["gates"], "```", ""]
    return "\n".join(out)


def run_training(args: argparse.Namespace, command: str, out: Path, log: Log) -> list[str]:
    """Write ``training.md`` (and its plot when any results exist)."""
    from edgerl.bench.device import device_info

    sources = find_sources([(p, "compare") for p in args.compare] + [(p, "gates") for p in args.gates], REPO)
    pts = [p for s in sources for p in points(s)]
    stale = out / "training_return_vs_params.png"
    written = ["training.md"]
    if pts:
        plot_training(pts, stale)
        written.append(stale.name)
    elif stale.exists():
        stale.unlink()
    (out / "training.md").write_text(training_doc(sources, command, REPO, device_info(1)))
    log(f"training: {len(sources)} folder(s), {sum(1 for s in sources if s.results)} with results, "
        f"{len(pts)} run(s)")
    return written


# ----------------------------------------------------------------------------------------- widths
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
    group to ``target_width(original, ratio)`` whenever the schedule says so and the ratio grew:
    that is replayed here. The result is returned only if its final widths equal the shapes of
    the checkpoint's networks.
    """
    from edgerl.prune.gradual import target_width
    from edgerl.prune.schedule import schedule_from_dict

    if ckpt.get("algo") != "sac":
        return None, f"no recorded history, and replaying the schedule is exact only for SAC (algo {ckpt.get('algo')})"
    state = ckpt["hooks"]["gradual"]
    sched = schedule_from_dict(state["schedule"])
    orig = state["original_widths"]
    rt = state.get("round_to")
    end = int(ckpt["counters"]["global_step"])
    history = [[0, {f"{n}/{k}": int(w) for n, g in orig.items() for k, w in g.items()}]]
    applied, last = 0.0, None
    for step in range(1, end + 1):
        prune, last = sched.should_prune(step, last), step
        if not prune:
            continue
        ratio = sched.target_ratio(step)
        if ratio <= applied:
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
    import csv

    nets = ckpt["agent"].get("nets", {})
    actor = (nets.get("actor") or {}).get("state", {})
    trunk = sorted((int(k.split(".")[1]), v) for k, v in actor.items() if k.startswith("trunk.") and k.endswith(".weight"))
    metrics = run_dir / "metrics.csv"
    if "ofenet_state" in nets or not trunk or "mean.weight" not in actor or not metrics.is_file():
        return None, "no logged actor parameter counts to compare with"
    obs_dim, act_dim = int(trunk[0][1].shape[1]), int(actor["mean.weight"].shape[0])
    with open(metrics, newline="") as f:
        logged = [(int(float(r["step"])), int(float(r["params"]))) for r in csv.DictReader(f) if r.get("params")]
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
    plt = _pyplot()
    layers = list(history[0][1])
    nets = list(dict.fromkeys(k.split("/", 1)[0] if "/" in k else k.split(".", 1)[0] for k in layers))
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(8, 5))
    for layer in layers:
        net = layer.split("/", 1)[0] if "/" in layer else layer.split(".", 1)[0]
        steps = [s for s, _ in history] + [max(end, history[-1][0])]
        widths = [w.get(layer, 0) for _, w in history] + [history[-1][1].get(layer, 0)]
        ax.step(steps, widths, where="post", label=layer, ls=styles[nets.index(net) % len(styles)])
    ax.set_xlabel("environment step")
    ax.set_ylabel("surviving units / channels")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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


def run_widths(args: argparse.Namespace, command: str, out: Path, log: Log) -> list[str]:
    """Write ``widths.md`` and one ``widths-<run>.png`` per run with a history."""
    import torch

    runs = [Path(r) for r in args.runs] if args.runs else default_runs(list(args.compare) + list(args.gates), REPO)
    for old in out.glob("widths-*.png"):
        old.unlink()
    entries, skipped, written = [], [], ["widths.md"]
    for run in runs:
        ckpt_path = run / "ckpt.pt" if run.is_dir() else run
        name = str(run.resolve().relative_to(REPO)) if run.resolve().is_relative_to(REPO) else str(run)
        if not ckpt_path.is_file():
            skipped.append((name, f"no checkpoint at {ckpt_path}"))
            continue
        try:
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        except Exception as e:  # a file being replaced right now, damaged, or not an edgerl checkpoint
            skipped.append((name, f"unreadable checkpoint ({type(e).__name__}: {str(e)[:120]})"))
            continue
        hook, history, why = width_history(ckpt, reconstruct=not args.no_reconstruct, run_dir=ckpt_path.parent)
        if history is None:
            if args.runs or hook is not None:
                skipped.append((name, why))
            continue
        end = int(ckpt["counters"]["global_step"])
        png = f"widths-{_slug(run, REPO)}.png"
        kind = "reconstructed from the stored schedule" if why.startswith("reconstructed") else "recorded"
        plot_widths(history, end, f"{name}\n{hook} pruning, width history {kind}", out / png)
        written.append(png)
        v = ckpt.get("versions") or {}
        entries.append({"run": name, "hook": hook, "history": history, "provenance": why, "end": end, "png": png,
                        "versions": ", ".join(f"{k} {x}" for k, x in v.items()) or "not recorded"})
    (out / "widths.md").write_text(widths_doc(entries, skipped, command, bool(args.runs)))
    log(f"widths: {len(entries)} run(s) plotted, {len(skipped)} without a curve")
    return written


# ------------------------------------------------------------------------------------------ index
def readme(out: Path) -> str:
    """The ``README.md`` index (lists every doc present in ``out``)."""
    about = {
        "latency.md": "batch-1 latency (p50/p90/p99) vs MACs of dense and group-pruned SAC actors and "
                      "Impala-CNNs on torch and ONNX Runtime, with ratios vs dense",
        "training.md": "return vs deployed actor parameters from `tools/compare_pruning.py` and "
                       "`tools/measure_gates.py` runs",
        "widths.md": "surviving width per layer over training, from run checkpoints",
    }
    lines = ["# Benchmarks", "", "The pages listed here are generated by `tools/make_reports.py` (do not edit them "
             "by hand). Regenerate all of them with the default budget:", "", "```",
             f"{_python()} tools/make_reports.py", "```", "",
             "or one part with `--parts latency|training|widths`. Each page names the exact command that made it "
             "and the device and library versions it was measured (or rendered) with.", ""]
    lines += [f"- [{doc}]({doc}): {text}" for doc, text in about.items() if (out / doc).exists()]
    extra = sorted(str(p.relative_to(out)) for p in [*out.glob("*.md"), *out.glob("*/*.md")]
                   if p.name not in about and p.name != "README.md")
    if extra:
        lines += ["", "Also in this folder, made by other tools (each page names its command):", ""]
        lines += [f"- [{p}]({p})" for p in extra]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- main
def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        return [kind(x) for x in text.split(",") if x.strip()]

    return parse


def _python() -> str:
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(REPO)) if exe.is_relative_to(REPO) else "python"
    except ValueError:
        return "python"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/benchmarks", help="output folder (default: %(default)s)")
    p.add_argument("--parts", type=_csv(str), default=list(PARTS), help=f"subset of {','.join(PARTS)}")
    g = p.add_argument_group("latency")
    g.add_argument("--families", type=_csv(str), default=list(FAMILIES), help=f"subset of {','.join(FAMILIES)}")
    g.add_argument("--ratios", type=_csv(float), default=[0.5, 0.8, 0.9], help="channel ratios (dense is always in)")
    g.add_argument("--round-to", type=int, default=8, help="also time Impala variants with round_to=N (0: none)")
    g.add_argument("--backends", type=_csv(str), default=["torch", "ort-cpu"], help="bench backends")
    g.add_argument("--threads", type=int, default=1, help="intra-op threads of torch and ONNX Runtime")
    g.add_argument("--min-queries", type=int, default=500, help="timed calls per model and backend, at least")
    g.add_argument("--min-seconds", type=float, default=1.0, help="timed seconds per model and backend, at least")
    g.add_argument("--warmup", type=int, default=100, help="untimed calls per model and backend first")
    g.add_argument("--rounds", type=int, default=10, help="interleaved rounds (order alternates)")
    g.add_argument("--seed", type=int, default=0, help="seeds the weights and the random observations")
    g.add_argument("--impala-json", default=None,
                   help="take the Impala rows from this tools/bench_impala.py JSON instead of timing them")
    g = p.add_argument_group("training and widths")
    g.add_argument("--compare", nargs="*", default=["runs/compare*"], help="globs of compare_pruning.py folders")
    g.add_argument("--gates", nargs="*", default=["runs/gates*"], help="globs of measure_gates.py folders")
    g.add_argument("--runs", nargs="+", default=None, help="run folders for the width plots (default: every run "
                   "under --compare/--gates folders with a width history)")
    g.add_argument("--no-reconstruct", action="store_true",
                   help="do not replay the schedule of gradual runs saved without a width history")
    args = p.parse_args(argv)
    bad = [x for x in args.parts if x not in PARTS] + [f for f in args.families if f not in FAMILIES]
    if bad:
        p.error(f"unknown {bad}; --parts from {PARTS}, --families from {tuple(FAMILIES)}")
    if any(not 0 < r < 1 for r in args.ratios):
        p.error(f"--ratios must lie in (0, 1), got {args.ratios}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Regenerate the chosen parts and the index."""
    args = parse_args(argv)
    raw = sys.argv[1:] if argv is None else argv
    command = f"{_python()} tools/make_reports.py {shlex.join(raw)}".strip()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(s: str) -> None:
        print(s, flush=True)

    written: dict[str, list[str]] = {}
    steps = {"latency": run_latency, "training": run_training, "widths": run_widths}
    for part in PARTS:
        if part in args.parts:
            written[part] = steps[part](args, command, out, log)
    (out / "README.md").write_text(readme(out))
    log(f"wrote {', '.join(str(out / f) for fs in written.values() for f in fs)}, {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

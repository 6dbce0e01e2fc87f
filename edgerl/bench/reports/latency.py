"""The latency report: batch-1 latency vs MACs of dense and group-pruned policies, timed by
``edgerl.bench.run_bench`` (``latency.md``, ``latency_vs_macs.png``, ``latency.json``)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgerl.bench.reports.common import device_text, panels, pyplot, save_figure
from edgerl.bench.reports.families import (
    FAMILIES,
    Family,
    Variant,
    impala_family,
    variants,
    write_policy,
)
from edgerl.bench.reports.options import ReportOptions
from edgerl.bench.shapes import FRAME
from edgerl.errors import ConfigError
from edgerl.runtime.fileio import atomic_write_text

if TYPE_CHECKING:
    from edgerl.bench.api import Log

TIMING = ("p50_us", "p90_us", "p99_us", "max_us", "n")
"""The timing fields a latency row copies from its measurement."""


def time_family(family: Family, opts: ReportOptions, workdir: Path, log: Log) -> dict[str, Any]:
    """Build, save and time one family (dense baseline + pruned variants, interleaved).

    A ``round_to`` variant whose widths equal another variant's is not timed twice (listed as a duplicate).
    """
    from edgerl.bench.api import run_bench

    described: list[dict[str, Any]] = []
    duplicates, paths = [], []
    for v in variants(family, opts.ratios, opts.round_to):
        t0 = time.perf_counter()
        path = workdir / f"{v.label}.pt"
        d = write_policy(v, path, opts.seed)
        twin = next((x for x in described if x["widths"] == d["widths"]), None)
        if twin is not None:
            duplicates.append({"label": v.label, "same_as": twin["label"], "widths": d["widths"]})
            log(f"  {v.label}: same widths as {twin['label']}, not timed again")
            continue
        described.append(d)
        paths.append(path)
        log(f"  built {v.label}: widths {d['widths']} ({time.perf_counter() - t0:.1f} s)")
    load_before = os.getloadavg()
    report = run_bench(paths[1:], baseline=paths[0], backends=opts.backends, batches=(1,), threads=opts.threads,
                       min_queries=opts.min_queries, min_seconds=opts.min_seconds, warmup=opts.warmup,
                       rounds=opts.rounds, seed=opts.seed, overhead=False, log=lambda s: log(f"  {s}"))
    load = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]}
    return {"family": family.key, "title": family.title, "variants": described, "duplicates": duplicates,
            "loadavg": load, "report": report}


def _timing(r: dict[str, Any], dense: dict[str, Any] | None) -> dict[str, Any]:
    """The timing fields of ``r`` and its p50/p90/p99 ratios to ``dense`` (None without a dense row)."""
    vs = {p: r[f"{p}_us"] / dense[f"{p}_us"] for p in ("p50", "p90", "p99")} if dense else None
    return {**{k: r[k] for k in TIMING}, "vs_dense": vs}


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
            rows.append({
                "family": fam["family"], "title": fam["title"], "model": d["label"], "ratio": d["ratio"],
                "round_to": d["round_to"], "widths": d["widths"], "backend": r["backend"],
                "params": m["graph_params"] if m["graph_params"] is not None else m["params"],
                "macs": m["graph_macs"] if m["graph_macs"] is not None else m["macs"],
                "module_params": m["params"], "module_macs": m["macs"],
                **_timing(r, base.get(r["backend"])),
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
        raise ConfigError(f"{path}: no rows at input {'x'.join(map(str, FRAME))}; rerun tools/bench_impala.py "
                          "with --shapes 3x64x64 or drop --impala-json")
    for r in picked:
        if r["ratio"] == 0:
            dense[r["tau"]] = r
    for r in picked:
        fam = impala_family(r["tau"])
        rows.append({
            "family": fam.key, "title": fam.title, "model": Variant(fam, r["ratio"], r["round_to"]).label,
            "ratio": r["ratio"], "round_to": r["round_to"], "widths": [r["channels"], r["inner"], r["hidden"]],
            "backend": "ort-cpu (bare)", "params": r["params"], "macs": r["macs"],
            **_timing(r, dense.get(r["tau"])),
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


def plot_latency(rows: list[dict[str, Any]], path: Path) -> None:
    """p50 (marker) with p99 (top of the error bar) vs deployed MACs, log-log, one panel per backend."""
    plt = pyplot()
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    fig, axes, colors = panels(plt, len(backends), 5.2)
    fams = list(dict.fromkeys(r["family"] for r in rows))
    for ax, backend in zip(axes, backends, strict=True):
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
    save_figure(plt, fig, path)


INTRO = [
    "- **sac** families: `SquashedGaussianActor` 17 -> hidden -> 6 (HalfCheetah-v5 sizes), deployed graph "
    "obs -> actor mean -> tanh -> action rescale. **impala** families: `ActorCriticCNN` (Impala-CNN, Linear "
    "256, 15 actions) on uint8 3x64x64 frames, deployed graph frames -> logits -> argmax.",
    "- `torch` is the eager policy (`torch.inference_mode`); `ort-cpu` is edgerl's ONNX Runtime backend "
    "(IO binding, ORT_ENABLE_ALL, sequential).",
    "- params/MACs are those of the deployed ONNX graph (the SAC log-std head and the PPO critic are not "
    "in it); eager torch runs the whole module (`module_params`/`module_macs` in `latency.json`).",
]
"""What the families and backends of ``latency.md`` are."""


def _family_notes(fam: dict[str, Any]) -> list[str]:
    """The device, load, duplicate, skip and note lines under one family's table."""
    rep = fam["report"]
    load: dict[str, Any] = fam.get("loadavg") or {}
    cores = rep["device"].get("cpu_count") or 0
    busy = bool(load) and cores > 0 and max(load["before"][0], load["after"][0]) > cores
    out = [f"Device: {device_text(rep['device'])}" + (
        f" Load average (1/5/15 min) before timing {load['before']}, after {load['after']}." if load else "") + (
        f" The 1-minute load exceeded the {cores} cores: p90/p99 include time the process waited for a core "
        "(other processes' time slices), so compare p50s and ratios." if busy else ""), ""]
    out += [f"- {d['label']}: same widths as {d['same_as']}, not timed again" for d in fam.get("duplicates", [])]
    out += [f"- skipped {s['backend']}" + (f" for {s['model']}" if s["model"] else "") + f": {s['reason']}"
            for s in rep["skipped"]]
    out += [f"- note: {n}" for n in rep.get("notes", [])]
    return out + [""] if out[-1] else out


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
           "", *INTRO, "",
           "![latency vs MACs](latency_vs_macs.png)", ""]
    fams = {f["family"]: f for f in data["families"]}
    for key in dict.fromkeys(r["family"] for r in rows):
        sel = [r for r in rows if r["family"] == key]
        out += [f"## {key}: {sel[0]['title']}", "", latency_table(sel), ""]
        if key in fams:
            out += _family_notes(fams[key])
    if data.get("impala_json"):
        ij = data["impala_json"]
        out += [f"**impala** rows with backend `ort-cpu (bare)` come from `{ij['path']}` (made by "
                f"`{ij['command']}`: bare `InferenceSession.run`, not timed by this script; its params/MACs count "
                "the torch module, critic head included); "
                f"{device_text(ij['device'])}", ""]
    out += ["Absolute times on a shared machine are noisy; the interleaved ratios are steadier. Raw bench "
            "reports (every percentile, model and device entry): [latency.json](latency.json).", ""]
    return "\n".join(out)


def run_latency(opts: ReportOptions, command: str, out: Path, log: Log) -> list[str]:
    """Time every family (or reuse ``opts.impala_json`` for Impala) and write the latency docs."""
    import torch

    torch.set_num_threads(opts.threads)
    data: dict[str, Any] = {"command": command, "families": [],
                            "config": {k: getattr(opts, k) for k in ("backends", "threads", "min_queries",
                                                                     "min_seconds", "warmup", "rounds", "seed",
                                                                     "ratios", "round_to")}}
    chosen = [FAMILIES[k] for k in opts.families]
    use_json = bool(opts.impala_json) and any(f.kind == "impala" for f in chosen)
    ij_rows: list[dict[str, Any]] = []
    if use_json:
        ij_rows, ij = impala_json_rows(Path(opts.impala_json or ""))
        chosen = [f for f in chosen if f.kind != "impala"]
        data["impala_json"] = {"path": opts.impala_json, "command": ij.get("command"), "device": ij["device"]}
    with tempfile.TemporaryDirectory(prefix="make-reports-") as tmp:
        for fam in chosen:
            log(f"latency: {fam.title}")
            data["families"].append(time_family(fam, opts, Path(tmp), log))
    rows = latency_rows(data["families"]) + ij_rows
    atomic_write_text(out / "latency.json", json.dumps({**data, "rows": rows}, indent=1) + "\n")
    plot_latency(rows, out / "latency_vs_macs.png")
    atomic_write_text(out / "latency.md", latency_doc(data, rows))
    return ["latency.md", "latency_vs_macs.png", "latency.json"]

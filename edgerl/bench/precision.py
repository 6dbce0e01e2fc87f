"""fp32 / fp16 / int8 variants of the same policies, benchmarked in one interleaved run.

:func:`export_variants` writes each checkpoint's variants with ``export_policy(precision=...)``
(int8 calibrated on the run's replay buffer, a rollout or a given file, and checked against
float32); :func:`precision_bench` times them all interleaved through :func:`run_bench` and, given
an environment, adds the episodic return of each variant on the same seeds (the check that
matters for a policy); :func:`plot_return_vs_p99` draws return against p99 latency.
Image policies (no checkpoint) are in :mod:`edgerl.bench.image_precision`; :func:`precision_page`
is the page ``tools/bench_precision.py`` writes of both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgerl.errors import ConfigError

PRECISIONS = ("fp32", "fp16", "int8")
Log = Callable[[str], None]


def check_precisions(precisions: Sequence[str]) -> list[str]:
    """The list, validated (a one-line :class:`ConfigError` names the bad entry)."""
    out = list(precisions)
    bad = [p for p in out if p not in PRECISIONS]
    if bad or not out or len(set(out)) != len(out):
        raise ConfigError(f"--precisions takes distinct names from {','.join(PRECISIONS)}, got {','.join(out)}")
    return out


def export_variants(models: Sequence[tuple[str, str | os.PathLike]], precisions: Sequence[str], workdir: Path,
                    calibration_obs: str | os.PathLike | None = None, recorded_steps: int = 256,
                    exporter: str = "auto", log: Log | None = None) -> list[dict[str, Any]]:
    """Export ``(label, checkpoint)`` pairs at every precision into ``workdir/<label>-<precision>/``.

    Returns one entry per variant: ``{label, model, precision, folder, export}`` (``export`` is the
    :class:`~edgerl.export.api.ExportReport` as a dict, with the error statistics for fp16/int8).
    """
    from edgerl.export.api import export_policy

    out = []
    for label, ckpt in models:
        for precision in check_precisions(precisions):
            folder = workdir / f"{label}-{precision}"
            folder.mkdir(parents=True, exist_ok=True)
            if log:
                log(f"exporting {label} at {precision}")
            report = export_policy(ckpt, folder / "policy.onnx", precision=precision, calibration_obs=calibration_obs,
                                   recorded_steps=recorded_steps, exporter=exporter)
            out.append({"label": f"{label}-{precision}", "model": label, "precision": precision,
                        "folder": folder, "export": report.to_dict()})
    return out


def onnx_returns(folder: Path, env_id: str, episodes: int, seed: int, max_steps: int | None = None,
                 checkpoint: str | os.PathLike | None = None) -> list[float]:
    """Episode returns of the graph in ``folder`` (ONNX Runtime CPU, 1 thread) with seeds ``seed + i``,
    on ``env_id`` made with ``checkpoint``'s preprocessing when it trained on that env (image policies)."""
    from edgerl.checkpoint import load_checkpoint
    from edgerl.commands.run import env_maker, rollout
    from edgerl.export.checks import ort_session
    from edgerl.runtime.contract import read_contract

    contract = read_contract(folder / "contract.json")
    ckpt = load_checkpoint(checkpoint) if checkpoint is not None else None
    session = ort_session((folder / "policy.onnx").read_bytes())
    dtype = np.uint8 if contract.obs_dtype == np.uint8 else np.float32

    def act(obs: np.ndarray) -> Any:
        a = session.run(None, {"obs": np.asarray(obs, dtype=dtype)[None]})[0][0]
        return int(a) if contract.discrete else a

    return rollout(act, env_maker(env_id, env_id, ckpt, contract), episodes, seed, max_steps)


def precision_bench(models: Sequence[tuple[str, str | os.PathLike]], precisions: Sequence[str] = PRECISIONS,
                    backends: Sequence[str] = ("ort-cpu",), env: str | None = None, episodes: int = 5,
                    seed: int = 0, workdir: Path | None = None, calibration_obs: str | os.PathLike | None = None,
                    recorded_steps: int = 256, exporter: str = "auto", log: Log | None = None,
                    **bench_kw: Any) -> dict[str, Any]:
    """Time every (model, precision) variant interleaved; add returns on ``env`` if given.

    The first model's fp32 variant is the baseline of the ratios. Returns :func:`run_bench`'s report
    plus ``"precision": [{label, model, precision, backend, p50_us, p90_us, p99_us, file_bytes,
    return_mean, return_std, returns, error}]``.
    """
    import tempfile

    from edgerl.bench.api import run_bench

    with tempfile.TemporaryDirectory(prefix="edgerl-precision-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        variants = export_variants(models, precisions, root, calibration_obs, recorded_steps, exporter, log=log)
        base = next((v for v in variants if v["precision"] == "fp32"), variants[0])
        others = [v for v in variants if v is not base]
        report = run_bench([v["folder"] for v in others], base["folder"], list(backends), seed=seed,
                           overhead=False, log=log, **bench_kw)
        by_path = {str(m["path"]): m["label"] for m in report["models"]}
        rows = []
        for v in variants:
            bench_label = by_path[str(v["folder"])]
            stats = (v["export"].get("precision_report") or {}).get("stats", {})
            for r in (r for r in report["results"] if r["model"] == bench_label and r["batch"] == 1):
                rows.append({"label": v["label"], "model": v["model"], "precision": v["precision"],
                             "backend": r["backend"], **{k: r[k] for k in ("p50_us", "p90_us", "p99_us", "max_us", "mean_us")},
                             "file_bytes": r["file_bytes"], "error": stats})
            if env:
                if log:
                    log(f"return of {v['label']} on {env} ({episodes} episodes, seeds {seed}..)")
                returns = onnx_returns(v["folder"], env, episodes, seed, checkpoint=v["export"]["checkpoint"])
                for row in rows:
                    if row["label"] == v["label"]:
                        row.update(returns=returns, return_mean=float(np.mean(returns)),
                                   return_std=float(np.std(returns)))
    report["precision"] = rows
    report["config"]["precisions"] = list(precisions)
    report["config"]["env"], report["config"]["episodes"] = env, episodes
    return report


def precision_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table: one row per variant and backend (ratios against the first fp32 row)."""
    if not rows:
        return ""
    base = next((r for r in rows if r["precision"] == "fp32"), rows[0])
    ret = any("return_mean" in r for r in rows)
    cols = ["policy", "precision", "backend", "p50 us", "p90 us", "p99 us", "p50 vs fp32", "size KiB",
            "max \\|a-a32\\| (held out)", *(["return (same seeds)"] if ret else [])]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        ref = next((b for b in rows if b["model"] == r["model"] and b["precision"] == "fp32"
                    and b["backend"] == r["backend"]), base)
        held = r["error"].get("held_out") or r["error"].get("recorded") or {}
        err = held.get("max") if held.get("max") is not None else held.get("agreement")
        err_s = "-" if err is None else (f"{err:.2%} agree" if held.get("agreement") is not None else f"{err:.3g}")
        cells = [r["model"], r["precision"], r["backend"], f"{r['p50_us']:.1f}", f"{r['p90_us']:.1f}",
                 f"{r['p99_us']:.1f}", f"{r['p50_us'] / ref['p50_us']:.2f}", f"{r['file_bytes'] / 1024:.1f}", err_s]
        if ret:
            cells.append(f"{r['return_mean']:.1f} ± {r['return_std']:.1f}" if "return_mean" in r else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_return_vs_p99(rows: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> None:
    """Scatter of return against p99 latency, one marker per precision, one colour per policy."""
    from edgerl.bench.plotting import pyplot

    plt = pyplot()
    if plt is None:
        raise ImportError("the precision plot needs matplotlib: pip install matplotlib")

    from edgerl.runtime.fileio import atomic_write

    markers = {"fp32": "o", "fp16": "s", "int8": "^"}
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, model in enumerate(models):
        for r in (r for r in rows if r["model"] == model and "return_mean" in r):
            ax.errorbar(r["p99_us"], r["return_mean"], yerr=r["return_std"], marker=markers[r["precision"]],
                        color=f"C{i}", capsize=3, linestyle="none",
                        label=f"{model} {r['precision']}")
    p99 = [r["p99_us"] for r in rows if "return_mean" in r]
    log_x = bool(p99) and max(p99) > 10 * min(p99)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("p99 latency per call, batch 1 (us" + (", log)" if log_x else ")"))
    ax.set_ylabel("episodic return (mean ± std, same seeds)")
    ax.set_title(title or "return vs p99 latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def models_by_env(specs: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """``LABEL=CKPT`` entries (a bare path is labelled by its name) grouped by the env their
    checkpoint (or run folder's ``ckpt.pt``) was trained on."""
    from edgerl.checkpoint import load_checkpoint

    groups: dict[str, list[tuple[str, str]]] = {}
    for spec in specs:
        label, path = spec.split("=", 1) if "=" in spec else (Path(spec).name, spec)
        groups.setdefault(load_checkpoint(path)["env"]["id"], []).append((label, path))
    return groups


def precision_page(out: dict[str, Any]) -> str:
    """The Markdown page of a ``tools/bench_precision.py`` result (``command``, ``device``, and
    its ``image`` rows and per-env ``mlp`` rows where present)."""
    from edgerl.bench.image_precision import image_markdown
    from edgerl.bench.report_format import device_line

    text = [f"`{out['command']}`", "", f"Device: {device_line(out['device'])}", ""]
    if "image" in out:
        text += ["## Image policies (Impala-CNN, batch 1, 1 thread, ORT CPU)", "", image_markdown(out["image"])]
    for env, res in out.get("mlp", {}).items():
        text += [f"## MLP policies (SAC actors), {env}", "", precision_markdown(res["rows"])]
        if "plot" in res:
            text += [f"![return vs p99, {env}]({Path(res['plot']).name})", ""]
    return "\n".join(text) + "\n"

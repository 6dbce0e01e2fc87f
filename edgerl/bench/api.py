"""``run_bench``: single-stream latency of compact models against the dense baseline, per backend
and batch size, plus the runtime's own overhead, in one JSON-able report.

Report layout::

    {"device": {...},                       # edgerl.bench.device.device_info
     "config": {backends, batches, threads, min_queries, min_seconds, warmup, rounds, seed, ...},
     "models": [{label, role, path, kind, params, macs, graph_params, graph_macs, file_bytes, ...}],
     "results": [{model, role, backend, batch, params, macs, file_bytes,
                  p50_us, p90_us, p99_us, max_us, mean_us, n, seconds, runner}],
     "ratios": [{model, baseline, backend, batch, p50, p90, p99}],     # model / baseline
     "overhead": [{model, backend, batch, threads, act, bare, backend_run_single, ratio, goal, ...}],
     "skipped": [{model, backend, reason}],                 # model None: every model
     "notes": [...]}

``params`` and ``macs`` are per sample (a batch of B costs B x macs).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgerl.bench.device import device_info
from edgerl.bench.inputs import observation_pool
from edgerl.bench.latency import Series, measure, percentiles
from edgerl.bench.models import BenchModel, load_models
from edgerl.bench.runners import (
    TORCH,
    Timed,
    act_runner,
    backend_runner,
    bare_ort_runner,
    known_backends,
    torch_runner,
)
from edgerl.errors import BackendUnavailableError, ConfigError
from edgerl.runtime.backends import get_backend
from edgerl.runtime.profile import TargetProfile, load_profile, validate_profile

DEFAULT_BACKENDS = ("torch", "ort-cpu", "trt")
OVERHEAD_GOAL = 1.15
"""Goal for Policy.act() p50 / bare InferenceSession.run p50."""
Log = Callable[[str], None]


def check_options(backends: Sequence[str], batches: Sequence[int], threads: int, min_queries: int,
                  min_seconds: float, warmup: int, rounds: int) -> None:
    """Raise :class:`ConfigError` naming the first bad option."""
    known = known_backends()
    for b in backends:
        if b not in known:
            raise ConfigError(f"unknown backend {b!r} in --backends; choose from {','.join(known)}")
    if not backends:
        raise ConfigError(f"--backends is empty; choose from {','.join(known)}")
    if not batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batches):
        raise ConfigError(f"--batch must list positive integers (e.g. 1,32), got {list(batches)}")
    for name, value, low in (("--threads", threads, 1), ("--min-queries", min_queries, 1), ("--rounds", rounds, 1),
                             ("--warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if not min_seconds >= 0:
        raise ConfigError(f"--min-seconds must be >= 0, got {min_seconds!r}")


def bench_profile(profile: TargetProfile | str | None, threads: int, max_batch: int) -> TargetProfile:
    """The profile the runtime backends are built with: ``profile`` (default: fp32, any
    backend) with ``threads`` intra-op threads and a TensorRT max batch covering ``max_batch``."""
    if profile is None:
        base = validate_profile({"name": "bench", "family": "desktop-gpu", "backends": ["ort-cpu"],
                                 "precision": "fp32", "threads": threads, "control_rate_hz": 50.0,
                                 "latency_budget_us": 20000.0, "warmup_runs": 0}, source="edgerl bench profile")
    else:
        base = profile if isinstance(profile, TargetProfile) else load_profile(profile)
    return dataclasses.replace(base, threads=threads, max_batch=max(base.max_batch, max_batch))


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` while inside, if torch is loaded (restored after)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cache_dir(model: BenchModel, workdir: Path) -> Path:
    return model.bundle_dir / "cache" if model.bundle_dir is not None else workdir / "cache"


def _input_model(models: list[BenchModel]) -> BenchModel:
    """The model whose observation statistics shape the random inputs (the first that has any)."""
    return next((m for m in models if m.obs_mean is not None), models[0])


class _Skips:
    def __init__(self, log: Log) -> None:
        self.rows: list[dict[str, Any]] = []
        self._log = log

    def add(self, backend: str, reason: str, model: str | None = None) -> None:
        """Record once per backend and model (None: every model); a backend's reason holds for all batches."""
        if any(r["backend"] == backend and r["model"] == model for r in self.rows):
            return
        self.rows.append({"model": model, "backend": backend, "reason": reason})
        self._log(f"skipping {backend}" + (f" for {model}" if model else "") + f": {reason}")


def _latency(models: list[BenchModel], backends: Sequence[str], batches: Sequence[int], profile: TargetProfile,
             workdir: Path, skips: _Skips, timing: dict[str, Any], seed: int, log: Log) -> list[dict[str, Any]]:
    src = _input_model(models)
    usable = []
    for name in backends:
        ok, reason = (True, "") if name == TORCH else get_backend(name).available()
        if ok:
            usable.append(name)
        else:
            skips.add(name, reason)
    results: list[dict[str, Any]] = []
    for batch in batches:
        pool = observation_pool(src.obs_space, batch, seed, src.obs_mean, src.obs_std)
        for name in usable:
            with contextlib.ExitStack() as stack:
                runners: list[tuple[BenchModel, Timed]] = []
                for m in models:
                    try:
                        t = torch_runner(m, batch) if name == TORCH else \
                            backend_runner(m, name, batch, profile, _cache_dir(m, workdir))
                    except BackendUnavailableError as e:
                        skips.add(name, str(e), m.label)
                        continue
                    runners.append((m, stack.enter_context(t)))
                if not runners:
                    continue
                log(f"timing {name} batch {batch}: {', '.join(m.label for m, _ in runners)} interleaved")
                series = [Series(key=m, call=t.call, pool=pool) for m, t in runners]
                measure(series, **timing)
            for (m, t), s in zip(runners, series, strict=True):
                results.append({"model": m.label, "role": m.role, "backend": name, "batch": batch,
                                "params": m.params, "macs": m.macs, "file_bytes": m.file_bytes,
                                **percentiles(s.latencies()), "n": s.count, "seconds": round(s.seconds, 3),
                                "runner": t.describe})
    return results


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``model / baseline`` of p50, p90 and p99 for every backend and batch both were timed on."""
    base = {(r["backend"], r["batch"]): r for r in results if r["role"] == "baseline"}
    out = []
    for r in results:
        b = base.get((r["backend"], r["batch"]))
        if r["role"] != "model" or b is None:
            continue
        out.append({"model": r["model"], "baseline": b["model"], "backend": r["backend"], "batch": r["batch"],
                    **{p: r[f"{p}_us"] / b[f"{p}_us"] for p in ("p50", "p90", "p99")}})
    return out


def _overhead_one(model: BenchModel, profile: TargetProfile, workdir: Path, timing: dict[str, Any],
                  seed: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"model": model.label, "backend": "ort-cpu", "batch": 1, "goal": OVERHEAD_GOAL}
    cache = _cache_dir(model, workdir)
    with contextlib.ExitStack() as stack:
        act, policy = act_runner(model, profile, cache)
        stack.enter_context(act)
        threads = policy.profile.threads  # a bundle's own profile; else the bench profile
        backend = policy.backend
        bare = stack.enter_context(bare_ort_runner(model.onnx_path, threads, backend.input_shape, backend.input_dtype))
        direct = stack.enter_context(backend_runner(model, "ort-cpu", 1, dataclasses.replace(profile, threads=threads),
                                                    cache))
        pool = observation_pool(model.obs_space, 1, seed, model.obs_mean, model.obs_std)[:, 0]
        ranges = policy.contract.obs_ranges
        if ranges is not None:  # act() refuses observations outside the io ranges: time plausible ones
            pool = np.clip(pool.reshape(len(pool), -1), ranges.low, ranges.high).reshape(pool.shape).astype(pool.dtype)
        series = {k: Series(key=k, call=t.call, pool=pool) for k, t in
                  (("act", act), ("bare", bare), ("backend_run_single", direct))}
        measure(list(series.values()), **timing)
    stats = {k: {**percentiles(s.latencies()), "n": s.count} for k, s in series.items()}
    entry.update(threads=threads, **stats, runners={"act": act.describe, "bare": bare.describe,
                                                    "backend_run_single": direct.describe})
    entry["ratio"] = stats["act"]["p50_us"] / stats["bare"]["p50_us"]
    entry["ratio_p99"] = stats["act"]["p99_us"] / stats["bare"]["p99_us"]
    entry["within_goal"] = bool(entry["ratio"] <= OVERHEAD_GOAL)
    return entry


def _overhead(models: list[BenchModel], profile: TargetProfile, workdir: Path, timing: dict[str, Any],
              seed: int, log: Log) -> list[dict[str, Any]]:
    out = []
    for m in models:
        if m.role != "model":
            continue
        log(f"timing runtime overhead of {m.label}: Policy.act vs bare InferenceSession.run, interleaved")
        try:
            out.append(_overhead_one(m, profile, workdir, timing, seed))
        except BackendUnavailableError as e:
            out.append({"model": m.label, "backend": "ort-cpu", "batch": 1, "skipped": str(e)})
            log(f"overhead of {m.label} not measured: {e}")
    return out


def _notes(models: list[BenchModel], overhead: list[dict[str, Any]], threads: int) -> list[str]:
    notes = [f"{m.label}: {n}" for m in models for n in m.notes]
    if len({m.counted_from for m in models}) > 1:
        notes.append("params/MACs of checkpoints count every layer of the torch module (a SAC actor's log_std head "
                     "too), those of ONNX folders count the graph: compare graph_params/graph_macs across kinds")
    for o in overhead:
        if o.get("threads") not in (None, threads):
            notes.append(f"overhead of {o['model']} measured with its bundle profile's {o['threads']} thread(s) "
                         f"(bare session too), not --threads {threads}")
    return notes


def run_bench(models: Sequence[str | Path], baseline: str | Path | None = None,
              backends: Sequence[str] = DEFAULT_BACKENDS, batches: Sequence[int] = (1,), threads: int = 1, *,
              min_queries: int = 1000, min_seconds: float = 2.0, warmup: int = 200, rounds: int = 10,
              seed: int = 0, overhead: bool = True, profile: TargetProfile | str | None = None,
              exporter: str = "auto", log: Log | None = None) -> dict[str, Any]:
    """Benchmark ``models`` (and ``baseline``) single-stream; returns the report (module docstring).

    Args:
        models: Checkpoints or ONNX model folders (deploy bundles, export outputs) to measure.
        baseline: The dense reference they are compared with (ratios are model / baseline).
        backends: ``torch`` and/or runtime backends (``ort-cpu``, ``ort-cuda``, ``trt``); one that
            cannot run here is skipped and its reason recorded, never replaced.
        batches: Batch sizes (1 is the control-loop case).
        threads: Intra-op threads of torch and ONNX Runtime.
        min_queries: Timed calls per model, backend and batch, at least.
        min_seconds: Timed wall time per model, backend and batch, at least.
        warmup: Untimed calls before timing, per series.
        rounds: Rounds the models are interleaved in (order alternates each round).
        seed: Seeds the random observations.
        overhead: Also time Policy.act() against a bare InferenceSession.run for each model.
        profile: Target profile (name, path or object) for the runtime backends (precision, TensorRT
            workspace); default fp32. Its threads are replaced by ``threads``.
        exporter: ONNX exporter for checkpoints (``auto``, ``dynamo``, ``legacy``).
        log: Receives progress lines (default: silent).

    Raises:
        ConfigError: Bad option, a path that holds no model, models of different observation shapes.
        CheckpointError, BundleError: A model file is unreadable or damaged.
    """
    log = log or (lambda _: None)
    check_options(backends, batches, threads, min_queries, min_seconds, warmup, rounds)
    timing = {"min_queries": min_queries, "min_seconds": min_seconds, "warmup": warmup, "rounds": rounds}
    prof = bench_profile(profile, threads, max(batches))
    skips = _Skips(log)
    with tempfile.TemporaryDirectory(prefix="edgerl-bench-") as tmp:
        workdir = Path(tmp)
        loaded = load_models(list(models), baseline, workdir, exporter, native="c" in backends)
        with torch_threads(threads):
            results = _latency(loaded, backends, batches, prof, workdir, skips, timing, seed, log)
            over = _overhead(loaded, prof, workdir, timing, seed, log) if overhead else []
    return {
        "device": device_info(threads),
        "config": {"backends": list(backends), "batches": list(batches), "threads": threads, **timing,
                   "seed": seed, "profile": prof.name, "precision": prof.precision, "exporter": exporter,
                   "overhead_goal": OVERHEAD_GOAL},
        "models": [m.summary() for m in loaded],
        "results": results,
        "ratios": ratios(results),
        "overhead": over,
        "skipped": skips.rows,
        "notes": _notes(loaded, over, threads),
    }

"""What a report run regenerates and how: the fields ``tools/make_reports.py`` sets from its flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgerl.bench.reports.families import FAMILIES

PARTS = ("latency", "training", "widths")
"""The report parts, in the order they are made."""


@dataclass(frozen=True)
class ReportOptions:
    """Options of one report run (defaults: the flags' defaults)."""

    out: str = "docs/benchmarks"
    """Output folder."""
    parts: Sequence[str] = PARTS
    """Subset of :data:`PARTS`."""
    families: Sequence[str] = tuple(FAMILIES)
    """Latency: keys of ``FAMILIES`` to time."""
    ratios: Sequence[float] = (0.5, 0.8, 0.9)
    """Latency: channel ratios (dense is always in)."""
    round_to: int = 8
    """Latency: also time Impala variants with ``round_to=N`` (0: none)."""
    backends: Sequence[str] = ("torch", "ort-cpu")
    """Latency: bench backends."""
    threads: int = 1
    """Latency: intra-op threads of torch and ONNX Runtime."""
    min_queries: int = 500
    """Latency: timed calls per model and backend, at least."""
    min_seconds: float = 1.0
    """Latency: timed seconds per model and backend, at least."""
    warmup: int = 100
    """Latency: untimed calls per model and backend first."""
    rounds: int = 10
    """Latency: interleaved rounds (order alternates)."""
    seed: int = 0
    """Latency: seeds the weights and the random observations."""
    impala_json: str | None = None
    """Latency: take the Impala rows from this ``tools/bench_impala.py`` JSON instead of timing them."""
    compare: Sequence[str] = ("runs/compare*",)
    """Globs (relative to the repository) of ``tools/compare_pruning.py`` folders."""
    gates: Sequence[str] = ("runs/gates*",)
    """Globs (relative to the repository) of ``tools/measure_gates.py`` folders."""
    runs: Sequence[str] | None = None
    """Widths: run folders to plot (default: every run under the compare/gates folders with a width history)."""
    no_reconstruct: bool = False
    """Widths: do not replay the schedule of gradual runs saved without a width history."""

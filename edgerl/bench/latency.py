"""Single-stream latency in the manner of MLPerf: warm-up, at least N queries and a minimum
duration per series, series interleaved in rounds so that drift (clocks, thermals, neighbours)
hits every series alike, and tail percentiles rather than means.

A *series* is one thing timed call by call: ``call(obs)`` copies a new observation into the
model's input and runs it once, as a robot's control loop would. Only ``call`` is inside the
timed region; choosing the observation is not. Each call is timed with ``perf_counter_ns``.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ROUND_WARMUP = 10
"""Untimed calls a series makes at the start of each round, so that the caches it lost to the
series run before it are refilled (a robot runs one policy; interleaving must not penalise it)."""
MAX_EXTRA_ROUNDS = 20
"""Rounds added when the warm-up underestimated the per-call time and a minimum is unmet."""


@dataclass
class Series:
    """One timed thing: ``call(pool[i % len(pool)])`` for i = 0, 1, ..."""

    key: Any
    """Identifies the series to the caller (e.g. ``(model, backend, batch)``)."""
    call: Callable[[Any], Any]
    """Copies one observation (or batch) into the input and runs the model once."""
    pool: Sequence[Any]
    """Observations cycled through, one per call."""
    ns: list[np.ndarray] = field(default_factory=list)
    """Per-call latencies of each timed chunk, in nanoseconds."""
    seconds: float = 0.0
    """Wall time spent in timed chunks."""
    calls: int = 0
    """Calls made so far (also indexes the pool)."""

    @property
    def count(self) -> int:
        """Timed calls so far."""
        return sum(len(a) for a in self.ns)

    def run(self, n: int, timed: bool = True) -> None:
        """Make ``n`` calls; record their latencies if ``timed``."""
        pool, m, call, pc = self.pool, len(self.pool), self.call, time.perf_counter_ns
        start = self.calls
        out = np.empty(n, np.int64)
        t_start = pc()
        for k in range(n):
            x = pool[(start + k) % m]
            t0 = pc()
            call(x)
            out[k] = pc() - t0
        t_end = pc()
        self.calls += n
        if timed:
            self.ns.append(out)
            self.seconds += (t_end - t_start) / 1e9

    def latencies(self) -> np.ndarray:
        """All timed latencies (ns), in call order."""
        return np.concatenate(self.ns) if self.ns else np.empty(0, np.int64)


def percentiles(ns: np.ndarray) -> dict[str, float]:
    """``p50_us``, ``p90_us``, ``p99_us``, ``max_us``, ``mean_us`` of latencies in ns.

    Percentiles use the ``higher`` rule: each is a latency that was actually observed, never an
    interpolation, which errs on the slow side for tails.
    """
    if len(ns) == 0:
        raise ValueError("no latencies recorded")
    p50, p90, p99 = np.percentile(ns, [50, 90, 99], method="higher")
    return {"p50_us": float(p50) / 1e3, "p90_us": float(p90) / 1e3, "p99_us": float(p99) / 1e3,
            "max_us": float(ns.max()) / 1e3, "mean_us": float(ns.mean()) / 1e3}


def _warm_up(series: Series, calls: int) -> float:
    """Run the warm-up; returns an estimate of one call's wall time (seconds)."""
    if calls <= 0:
        t = time.perf_counter_ns()
        series.run(1, timed=False)
        return max((time.perf_counter_ns() - t) / 1e9, 1e-7)
    t = time.perf_counter_ns()
    series.run(calls, timed=False)
    return max((time.perf_counter_ns() - t) / 1e9 / calls, 1e-7)


def measure(series: Sequence[Series], min_queries: int = 1000, min_seconds: float = 1.0,
            rounds: int = 10, warmup: int = 200) -> None:
    """Time every series, interleaved, until each has ``min_queries`` calls and ``min_seconds``.

    Each series first makes ``warmup`` untimed calls, whose duration sizes its chunks: the
    calls needed for both minimums are split over ``rounds`` rounds. In each round every series
    runs one chunk; the order alternates (A B C, C B A, ...), so no series always follows the
    same neighbour. If a minimum is still unmet after the planned rounds, rounds are added.
    The garbage collector is paused while timing (a robot's loop would not allocate enough to
    trigger it between two calls either); latencies land in ``Series.ns``.

    Raises:
        ValueError: A non-positive ``min_queries`` or ``rounds``, or a negative ``min_seconds``.
    """
    if min_queries < 1 or rounds < 1 or min_seconds < 0 or warmup < 0:
        raise ValueError("min_queries and rounds must be >= 1, min_seconds and warmup >= 0")
    per_call = [_warm_up(s, warmup) for s in series]
    chunks = [max(1, math.ceil(max(min_queries, math.ceil(min_seconds / t)) / rounds)) for t in per_call]

    def one_round(r: int) -> None:
        order = list(zip(series, chunks, strict=True))
        for s, chunk in (order if r % 2 == 0 else reversed(order)):
            s.run(min(ROUND_WARMUP, chunk), timed=False)
            s.run(chunk)

    def unmet() -> bool:
        return any(s.count < min_queries or s.seconds < min_seconds for s in series)

    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            one_round(r)
        extra = 0
        while unmet() and extra < MAX_EXTRA_ROUNDS:
            one_round(rounds + extra)
            extra += 1
    finally:
        if was_enabled:
            gc.enable()

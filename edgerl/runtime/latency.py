"""Per-call latency ring buffer with deadline-miss counting (no allocation per call)."""

from __future__ import annotations

import numpy as np


class LatencyRecorder:
    """Keeps the last ``window`` latencies (ns); counts calls, misses and the worst case over all calls."""

    def __init__(self, budget_us: float | None, window: int = 4096) -> None:
        """Args:
            budget_us: A call slower than this is a deadline miss (None: no budget).
            window: Number of recent calls the percentiles are computed over.
        """
        if window < 1:
            raise ValueError("window must be >= 1")
        self.budget_ns = None if budget_us is None else int(budget_us * 1000)
        self._buf = np.zeros(window, np.int64)
        self.reset()

    def reset(self) -> None:
        """Forget every recorded call."""
        self.count = 0
        self.misses = 0
        self.max_ns = 0

    def add(self, ns: int) -> bool:
        """Record one call; returns True if it missed the budget."""
        buf = self._buf
        buf[self.count % buf.shape[0]] = ns
        self.count += 1
        if ns > self.max_ns:
            self.max_ns = ns
        if self.budget_ns is not None and ns > self.budget_ns:
            self.misses += 1
            return True
        return False

    def summary(self) -> dict[str, float | int | None]:
        """count, p50/p90/p99 (last ``window`` calls) and max (all calls) in microseconds, misses."""
        n = min(self.count, self._buf.shape[0])
        out: dict[str, float | int | None] = {"count": self.count, "window": n}
        if n:
            p50, p90, p99 = np.percentile(self._buf[:n], [50, 90, 99]) / 1000.0
            out.update(p50_us=float(p50), p90_us=float(p90), p99_us=float(p99))
        else:
            out.update(p50_us=None, p90_us=None, p99_us=None)
        out["max_us"] = self.max_ns / 1000.0 if self.count else None
        out["misses"] = self.misses
        out["budget_us"] = None if self.budget_ns is None else self.budget_ns / 1000.0
        return out

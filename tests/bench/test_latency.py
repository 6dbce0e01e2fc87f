"""The timing core: minimums honoured, rounds interleaved, percentiles as observed values."""

from __future__ import annotations

import numpy as np
import pytest

from edgerl.bench.inputs import observation_pool
from edgerl.bench.latency import ROUND_WARMUP, Series, measure, percentiles
from edgerl.bench.models import unique_labels


def test_measure_meets_minimums_and_interleaves(monkeypatch):
    chunks: list[str] = []
    run = Series.run

    def logged(self, n, timed=True):
        if timed:
            chunks.append(self.key)
        run(self, n, timed)

    monkeypatch.setattr(Series, "run", logged)
    seen: list[float] = []
    a = Series("a", seen.append, pool=[1.0, 2.0, 3.0])
    b = Series("b", lambda x: None, pool=[0])
    measure([a, b], min_queries=50, min_seconds=0.0, rounds=4, warmup=3)
    assert a.count >= 50 and b.count >= 50
    assert a.count == len(a.latencies()) and a.latencies().dtype == np.int64
    assert chunks == ["a", "b", "b", "a", "a", "b", "b", "a"]  # one chunk each per round, order alternating
    assert set(seen) == {1.0, 2.0, 3.0}  # the pool is cycled: a new observation per call


def test_measure_min_seconds_adds_calls():
    s = Series("s", lambda x: sum(range(50)), pool=[0])
    measure([s], min_queries=1, min_seconds=0.05, rounds=2, warmup=10)
    assert s.seconds >= 0.05
    assert len(s.ns) >= 2  # at least one chunk per round


def test_round_warmup_is_untimed():
    s = Series("s", lambda x: None, pool=[0])
    measure([s], min_queries=30, min_seconds=0.0, rounds=3, warmup=0)
    assert s.calls == s.count + 1 + 3 * min(ROUND_WARMUP, 10)  # 1 sizing call, 3 round warm-ups


def test_percentiles_are_observed_values():
    ns = np.array([5_000, 1_000, 2_000, 3_000, 100_000], np.int64)
    p = percentiles(ns)
    assert p["p50_us"] == 3.0 and p["max_us"] == 100.0
    assert p["p50_us"] <= p["p90_us"] <= p["p99_us"] <= p["max_us"]
    assert p["p99_us"] in ns / 1e3
    with pytest.raises(ValueError):
        percentiles(np.empty(0, np.int64))


@pytest.mark.parametrize("bad", [{"min_queries": 0}, {"rounds": 0}, {"min_seconds": -1.0}])
def test_measure_rejects_bad_options(bad):
    with pytest.raises(ValueError):
        measure([Series("s", lambda x: None, pool=[0])], **bad)


def test_observation_pool_deterministic():
    space = {"shape": [4], "dtype": "float64", "low": [-1.0, None, 0.0, None], "high": [1.0, None, None, 2.0]}
    a, b = observation_pool(space, 3, seed=7), observation_pool(space, 3, seed=7)
    assert a.shape[1:] == (3, 4) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert np.all(np.abs(a[..., 0]) <= 1) and np.all(a[..., 2] >= 0) and np.all(a[..., 3] <= 2)
    img = observation_pool({"shape": [3, 8, 8], "dtype": "uint8", "low": [0], "high": [255]}, 2, seed=0)
    assert img.dtype == np.uint8 and img.shape[1:] == (2, 3, 8, 8)


def test_unique_labels():
    from pathlib import Path

    assert unique_labels([Path("runs/a/ckpt.pt"), Path("runs/b/ckpt.pt")]) == ["a/ckpt.pt", "b/ckpt.pt"]
    assert unique_labels([Path("x/compact.pt"), Path("x/ckpt.pt")]) == ["compact.pt", "ckpt.pt"]
    assert unique_labels([Path("m"), Path("m")]) == ["m#1", "m#2"]


def test_time_interleaved_times_every_runner_and_releases_them_all():
    from edgerl.bench.runners import Timed, time_interleaved

    seen: dict[str, list[int]] = {"a": [], "b": []}
    closed: list[str] = []
    runners = [Timed(lambda x, k=k: seen[k].append(int(x)), close=lambda k=k: closed.append(k)) for k in seen]
    rows = time_interleaved(runners, np.arange(5), min_queries=40, min_seconds=0.0, rounds=4, warmup=3)
    assert all(r["n"] >= 40 and r["p50_us"] <= r["p99_us"] for r in rows) and closed == ["a", "b"]
    assert set(seen["a"]) == set(range(5)) == set(seen["b"])  # the same input pool for both
    boom = [Timed(lambda x: 1 / 0, close=lambda: closed.append("c"))]
    with pytest.raises(ZeroDivisionError):
        time_interleaved(boom, np.arange(2), min_queries=1, rounds=1, warmup=1)
    assert closed[-1] == "c"  # released even when timing fails

"""A C micro-benchmark of a generated ``edgerl_act``: per-call latency percentiles on this CPU.

The harness is C (``clock_gettime(CLOCK_MONOTONIC)`` around each call, observations cycled from a
table so the branch predictor does not see one input), compiled with the runtime backend's flags.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgerl.runtime.backends.c import CFLAGS, HEADER, SOURCE, compile_c

HARNESS = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "policy.h"

#define N_OBS 64

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    const long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    static float obs[N_OBS][EDGERL_OBS_DIM];
    edgerl_action_t action[EDGERL_ACT_DIM];
    edgerl_scratch s;
    const long n = argc > 1 ? atol(argv[1]) : 100000, warmup = n / 10;
    long long *t = malloc(sizeof(long long) * (size_t)n), *u = malloc(sizeof(long long) * (size_t)n), start, total;
    long k;
    int i, j;
    unsigned seed = 12345u;
    volatile float sink = 0.0f;
    if (t == NULL || u == NULL) return 1;
    for (i = 0; i < N_OBS; ++i)
        for (j = 0; j < EDGERL_OBS_DIM; ++j) {
            seed = seed * 1664525u + 1013904223u;
            obs[i][j] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
        }
    for (k = 0; k < warmup; ++k) edgerl_act(obs[k % N_OBS], action, &s);
    for (k = 0; k < n; ++k) {
        start = now_ns();
        edgerl_act(obs[k % N_OBS], action, &s);
        t[k] = now_ns() - start;
        sink += (float)action[0];
    }
    /* Timer overhead: the same timed loop without the call. */
    for (k = 0; k < n; ++k) { start = now_ns(); u[k] = now_ns() - start; }
    total = now_ns();
    for (k = 0; k < n; ++k) edgerl_act(obs[k % N_OBS], action, &s);
    total = now_ns() - total;
    qsort(t, (size_t)n, sizeof(long long), cmp);
    qsort(u, (size_t)n, sizeof(long long), cmp);
    printf("{\"n\": %ld, \"p50_ns\": %lld, \"p90_ns\": %lld, \"p99_ns\": %lld, \"max_ns\": %lld, "
           "\"timer_p50_ns\": %lld, \"timer_p99_ns\": %lld, \"mean_untimed_ns\": %.1f}\n",
           n, t[n / 2], t[n * 9 / 10], t[n * 99 / 100], t[n - 1], u[n / 2], u[n * 99 / 100],
           (double)total / (double)n);
    free(t);
    free(u);
    return sink == 12345.0f;
}
"""


def build_bench(src_dir: str | Path, exe: str | Path, flags: tuple[str, ...] | list[str] = CFLAGS) -> Path:
    """Compile the harness against ``src_dir/policy.c`` into ``exe``; ``flags`` default to the
    runtime backend's (minus ``-shared``/``-fPIC``, which only a library needs)."""
    src, exe = Path(src_dir), Path(exe)
    harness = exe.with_suffix(".c")
    harness.write_text(HARNESS)
    compile_c([harness, src / SOURCE], exe, [f for f in flags if f not in ("-shared", "-fPIC")] + [f"-I{src}"])
    return exe


def run_bench(exe: str | Path, n: int = 200_000) -> dict[str, Any]:
    """Time ``n`` calls with a built harness: p50/p90/p99/max in ns, and net of the timer.

    Each timed call includes one ``clock_gettime`` pair; ``timer_p50_ns`` is that pair alone (timed
    the same way), and ``p50_net_ns``/``p99_net_ns`` subtract its p50.
    """
    out = subprocess.run([str(exe), str(n)], capture_output=True, text=True, timeout=600, check=True).stdout
    result = json.loads(out)
    result["p50_net_ns"] = result["p50_ns"] - result["timer_p50_ns"]
    result["p99_net_ns"] = result["p99_ns"] - result["timer_p50_ns"]
    return result


def bench_interleaved(src_dir: str | Path, variants: dict[str, tuple[str, ...]], n: int = 200_000,
                      rounds: int = 5) -> dict[str, dict[str, Any]]:
    """Each flag variant timed in ``rounds`` alternating runs of ``n / rounds`` calls; per variant the
    median over rounds of p50 and p99 (net of the timer) and the flags."""
    with tempfile.TemporaryDirectory(prefix="edgerl-bench-c-") as tmp:
        exes = {k: build_bench(src_dir, Path(tmp) / f"bench-{i}", f) for i, (k, f) in enumerate(variants.items())}
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
        for r in range(rounds):
            for k in (list(exes) if r % 2 == 0 else list(reversed(exes))):
                runs[k].append(run_bench(exes[k], max(1000, n // rounds)))
    out = {}
    for k, rs in runs.items():
        med = {key: float(np.median([x[key] for x in rs])) for key in ("p50_net_ns", "p99_net_ns", "timer_p50_ns")}
        out[k] = {**med, "rounds": rs, "flags": [f for f in variants[k] if f not in ("-shared", "-fPIC")]}
    return out


def macs_per_s(macs: int, ns: float) -> float:
    """Multiply-accumulates per second at ``ns`` per call."""
    return float(macs) / (float(ns) * 1e-9) if ns > 0 else float("nan")


def header_sizes(src_dir: str | Path) -> dict[str, int]:
    """``EDGERL_*`` integer constants of a generated ``policy.h``."""
    sizes: dict[str, int] = {}
    for line in (Path(src_dir) / HEADER).read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "#define" and parts[2].lstrip("-").isdigit():
            sizes[parts[1]] = int(parts[2])
    return sizes



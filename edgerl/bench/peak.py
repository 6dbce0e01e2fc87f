"""This machine's fp32 matrix-product throughput: the ceiling that inference latency and training
speed are compared to (``tools/bench_native.py``, ``tools/bench_train.py``)."""

from __future__ import annotations

import time

import numpy as np


def sgemm_peak_macs(n: int = 256, reps: int = 50) -> float:
    """Single-thread fp32 GEMM throughput (MAC/s) on this core: the best of ``reps`` 256^3 numpy
    products (run with one BLAS thread: ``OPENBLAS_NUM_THREADS=1``)."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return n ** 3 / best


def gemm_gflops(device: str, seconds: float = 1.0) -> float:
    """fp32 GFLOP/s of a 256x256x256 torch matmul on ``device`` (torch's thread count), sustained
    over ``seconds``."""
    import torch

    a = torch.randn(256, 256, device=device)
    b = torch.randn(256, 256, device=device)
    for _ in range(20):
        a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(50):
            a @ b
        n += 50
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return 2 * 256**3 * n / (time.perf_counter() - t0) / 1e9

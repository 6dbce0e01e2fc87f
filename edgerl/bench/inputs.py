"""Observations to time a policy on: random draws from its observation space, with a fixed seed.

The rule is that of :func:`edgerl.export.observations.random_observations` (uniform where both
bounds are finite, otherwise normal around the observation statistics, clipped to any finite
bound; integers uniform), restated here with numpy only: that module imports torch, and a bundle
is benchmarked where torch may not be installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

POOL_BYTES = 32 << 20
"""Largest observation pool drawn for one batch size (images are large)."""
POOL_MAX = 1024
"""Distinct observations (or batches) cycled through at most."""
POOL_MIN = 8


def _bound(values: Any, shape: tuple[int, ...], fill: float) -> np.ndarray:
    if values is None:
        return np.full(shape, fill)
    vals = np.array([fill if v is None else float(v) for v in np.ravel(np.asarray(values, dtype=object))])
    return np.full(shape, vals[0]) if vals.size == 1 else vals.reshape(shape)


def random_observations(space: dict[str, Any], n: int, rng: np.random.Generator,
                        mean: np.ndarray | None = None, std: np.ndarray | None = None) -> np.ndarray:
    """``n`` observations ``[n, *shape]`` in the space's dtype.

    Args:
        space: ``{"shape", "dtype", "low", "high"}`` (a checkpoint's Box description or a
            contract's ``observation`` section; bounds are lists with None for infinite entries).
        n: Number of observations.
        rng: Random generator (seeded by the caller).
        mean: Centre of the normal draws for unbounded entries (e.g. the normaliser's mean).
        std: Their spread (e.g. the normaliser's standard deviation).
    """
    shape = tuple(int(d) for d in space["shape"])
    dtype = np.dtype(space["dtype"])
    low, high = _bound(space.get("low"), shape, -np.inf), _bound(space.get("high"), shape, np.inf)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo = np.where(np.isfinite(low), low, info.min).astype(np.int64)
        hi = np.where(np.isfinite(high), high, info.max).astype(np.int64)
        return rng.integers(lo, hi + 1, size=(n, *shape)).astype(dtype)
    centre = np.zeros(shape) if mean is None else np.broadcast_to(mean, shape)
    scale = np.ones(shape) if std is None else np.broadcast_to(std, shape)
    normal = rng.normal(centre, scale, size=(n, *shape))
    bounded = np.isfinite(low) & np.isfinite(high)
    uniform = rng.uniform(np.where(bounded, low, 0.0), np.where(bounded, high, 1.0), size=(n, *shape))
    return np.where(bounded, uniform, np.clip(normal, low, high)).astype(dtype)


def observation_pool(space: dict[str, Any], batch: int, seed: int, mean: np.ndarray | None = None,
                     std: np.ndarray | None = None) -> np.ndarray:
    """``[pool, batch, *shape]`` observations for batch size ``batch``; the same for a seed."""
    shape = tuple(int(d) for d in space["shape"])
    sample_bytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(space["dtype"]).itemsize
    n = int(np.clip(POOL_BYTES // max(1, batch * sample_bytes), POOL_MIN, POOL_MAX))
    rng = np.random.default_rng([seed, batch])
    return random_observations(space, n * batch, rng, mean, std).reshape(n, batch, *shape)

"""Observations to time a policy on: random draws from its observation space, with a fixed seed.

The draw is :func:`edgerl.envs.random_observations` (numpy only), so a bundle is benchmarked
where torch is not installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgerl.envs import random_observations

POOL_BYTES = 32 << 20
"""Largest observation pool drawn for one batch size (images are large)."""
POOL_MAX = 1024
"""Distinct observations (or batches) cycled through at most."""
POOL_MIN = 8


def observation_pool(space: dict[str, Any], batch: int, seed: int, mean: np.ndarray | None = None,
                     std: np.ndarray | None = None) -> np.ndarray:
    """``[pool, batch, *shape]`` observations for batch size ``batch``; the same for a seed."""
    shape = tuple(int(d) for d in space["shape"])
    sample_bytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(space["dtype"]).itemsize
    n = int(np.clip(POOL_BYTES // max(1, batch * sample_bytes), POOL_MIN, POOL_MAX))
    rng = np.random.default_rng([seed, batch])
    return random_observations(space, n * batch, rng, mean, std).reshape(n, batch, *shape)

"""Environment creation and the description of observation/action spaces stored in checkpoints
and contracts."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from edgerl.errors import CheckpointError, ConfigError


def make_env(env_id: str, seed: int | None = None, **kwargs: Any):
    """``gymnasium.make`` with a clear error for unknown ids and missing extras."""
    import gymnasium as gym

    warnings.filterwarnings("ignore", message=".*settotalmass.*")
    if env_id.startswith("ALE/"):
        try:
            import ale_py

            gym.register_envs(ale_py)
        except ImportError as e:
            raise ConfigError(f"{env_id} needs the Atari extra: pip install 'edgerl[atari]'") from e
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise ConfigError(f"cannot make env {env_id!r}: {e}") from e
    except ImportError as e:
        raise ConfigError(f"env {env_id!r} needs a package that is not installed: {e}") from e
    if seed is not None:
        env.action_space.seed(seed)
    return env


def describe_space(space) -> dict[str, Any]:
    """A JSON-able description of a Box or Discrete space (shape, dtype, bounds)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        return {
            "kind": "box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _finite_or_none(space.low),
            "high": _finite_or_none(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"kind": "discrete", "n": int(space.n), "shape": [], "dtype": "int64", "start": int(space.start)}
    raise ConfigError(f"unsupported space {space!r}: edgerl handles Box and Discrete spaces")


def _finite_or_none(arr: np.ndarray) -> list | None:
    """Bounds as nested lists; infinite entries become None (JSON has no infinity)."""
    flat = arr.astype(np.float64)
    if flat.size > 4096:  # image bounds are uniform; keep the file small
        lo, hi = float(flat.min()), float(flat.max())
        return [lo] if lo == hi else None
    return [None if not np.isfinite(v) else float(v) for v in flat.reshape(-1)]


def space_env_info(env) -> dict[str, Any]:
    """Env id and spaces, as stored in checkpoints."""
    return {
        "id": env.spec.id if env.spec is not None else "unknown",
        "observation_space": describe_space(env.observation_space),
        "action_space": describe_space(env.action_space),
    }


def action_bounds(info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Finite low/high of a Box action space description."""
    space = info["action_space"]
    low = np.array([v if v is not None else -1.0 for v in space["low"]], dtype=np.float32)
    high = np.array([v if v is not None else 1.0 for v in space["high"]], dtype=np.float32)
    return low, high


def expand_bound(bound: list | None, shape: tuple[int, ...], fill: float) -> np.ndarray:
    """A space bound (per-element list with None for infinite, one uniform value, or None) in ``shape``."""
    size = int(np.prod(shape, dtype=np.int64))
    if bound is None:
        return np.full(shape, fill)
    vals = np.array([fill if v is None else float(v) for v in np.ravel(np.asarray(bound, dtype=object))],
                    dtype=np.float64)
    if vals.size == 1:
        return np.full(shape, vals[0])
    if vals.size != size:
        raise CheckpointError(f"observation bound has {vals.size} entries, shape {list(shape)} needs {size}; "
                              "the checkpoint is damaged")
    return vals.reshape(shape)


def random_observations(space: dict[str, Any], n: int, rng: np.random.Generator,
                        mean: np.ndarray | None = None, std: np.ndarray | None = None) -> np.ndarray:
    """``n`` observations ``[n, *shape]`` in the space's dtype: uniform where both bounds are
    finite, otherwise normal (around ``mean`` with ``std``, e.g. the normaliser's statistics)
    clipped to any finite bound; integers uniform. Used by compaction and export checks and by
    the benchmark (numpy only, so bundles are benchmarked without torch)."""
    shape = tuple(int(d) for d in space["shape"])
    dtype = np.dtype(space["dtype"])
    low = expand_bound(space.get("low"), shape, -np.inf)
    high = expand_bound(space.get("high"), shape, np.inf)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo = np.where(np.isfinite(low), low, info.min).astype(np.int64)
        hi = np.where(np.isfinite(high), high, info.max).astype(np.int64)
        return rng.integers(lo, hi + 1, size=(n, *shape)).astype(dtype)
    center = np.zeros(shape) if mean is None else np.broadcast_to(mean, shape)
    scale = np.ones(shape) if std is None else np.broadcast_to(std, shape)
    normal = rng.normal(center, scale, size=(n, *shape))
    bounded = np.isfinite(low) & np.isfinite(high)
    uniform = rng.uniform(np.where(bounded, low, 0.0), np.where(bounded, high, 1.0), size=(n, *shape))
    return np.where(bounded, uniform, np.clip(normal, low, high)).astype(dtype)

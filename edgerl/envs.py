"""Environment creation and the description of observation/action spaces stored in checkpoints
and contracts."""

from __future__ import annotations

import math
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


MAX_SPACE_SIZE = 1 << 28
"""Elements of one observation or action, at most (a 4096x4096x16 image); more is damage."""


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_space(space: Any, what: str) -> None:
    """A space description as :func:`describe_space` writes it: known kind, a shape of
    non-negative integers, a numeric dtype, finite bounds (or None) of the right length with
    ``low <= high``.

    Raises:
        CheckpointError: naming the field that is wrong.
    """
    def bad(detail: str) -> CheckpointError:
        return CheckpointError(f"{what} {detail}; the checkpoint is damaged")

    if not isinstance(space, dict):
        raise bad(f"is a {type(space).__name__}, not a mapping")
    kind = space.get("kind")
    if kind == "discrete":
        n, start = space.get("n"), space.get("start", 0)
        if not (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_SPACE_SIZE):
            raise bad(f"has n={str(n)[:40]!r}; expected a positive integer")
        if not (isinstance(start, int) and not isinstance(start, bool) and abs(start) < 2**31):
            raise bad(f"has start={str(start)[:40]!r}; expected an integer")
        return
    if kind != "box":
        raise bad(f"has kind {str(kind)[:40]!r}; expected 'box' or 'discrete'")
    shape = space.get("shape")
    if not isinstance(shape, list) or len(shape) > 8 or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_SPACE_SIZE for d in shape):
        raise bad(f"has shape {str(shape)[:60]}; expected a list of non-negative integers")
    size = math.prod(shape)
    if size > MAX_SPACE_SIZE:
        raise bad(f"has {size} elements (at most {MAX_SPACE_SIZE})")
    try:
        dtype = np.dtype(space.get("dtype"))
    except (TypeError, ValueError, SyntaxError):  # np.dtype parses strings and dicts in many ways
        raise bad(f"has dtype {str(space.get('dtype'))[:40]!r}; expected a numeric dtype name") from None
    if dtype.kind not in "fiu":
        raise bad(f"has dtype {dtype}; expected a float or integer dtype")
    bounds = {}
    for key in ("low", "high"):
        b = space.get(key)
        if b is None:
            continue
        if not isinstance(b, list) or len(b) not in (1, size) or not all(v is None or _number(v) for v in b):
            raise bad(f"has {key} {str(b)[:60]}; expected None or a list of {size} finite numbers (None: unbounded)")
        bounds[key] = b
    if len(bounds) == 2:
        lo, hi = (np.broadcast_to(np.array([np.nan if v is None else v for v in bounds[k]], dtype=np.float64),
                                  (size,)) for k in ("low", "high"))
        if np.any(lo > hi):
            raise bad("has low > high")


def check_env_info(info: Any) -> None:
    """The ``env`` entry of a checkpoint: ``{id, observation_space, action_space}``, each valid."""
    if not isinstance(info, dict) or not isinstance(info.get("id"), str):
        raise CheckpointError("checkpoint env entry must be a mapping with a string 'id'; the checkpoint is damaged")
    for key in ("observation_space", "action_space"):
        if key in info:
            check_space(info[key], f"checkpoint env {key}")


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
    shape = tuple(int(d) for d in space["shape"])
    low = expand_bound(space.get("low"), shape, -1.0).astype(np.float32).reshape(-1)
    high = expand_bound(space.get("high"), shape, 1.0).astype(np.float32).reshape(-1)
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


def episode_returns_of(env: Any, act: Any, episodes: int, seed: int, max_steps: int | None = None,
                       reset: Any = None) -> np.ndarray:
    """Returns of ``episodes`` episodes of ``act(obs) -> env action`` on ``env`` (env seeds ``seed + i``,
    each episode capped at ``max_steps``), then closes ``env``. The one evaluation loop of training,
    distillation, the benchmarks and ``edgerl run``. ``reset()``, if given, is called at every episode
    start (a recurrent policy's state is zeroed there)."""
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            if reset is not None:
                reset()
            done, total, n = False, 0.0, 0
            while not done:
                obs, r, term, trunc, _ = env.step(act(obs))
                total += float(r)
                n += 1
                done = term or trunc or (max_steps is not None and n >= max_steps)
            returns.append(total)
    finally:
        env.close()
    return np.asarray(returns, dtype=np.float64)

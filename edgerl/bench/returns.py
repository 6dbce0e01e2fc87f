"""Episode returns of a deployed policy, and their mean with a 95% confidence interval.

Every comparison of returns in edgerl (distillation, the compression table, the demo) rolls the
policies on the same env seeds (episode ``i`` uses ``seed + i``) and summarises them here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from edgerl.envs import episode_returns_of

# Two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30 (beyond: the normal 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (table; 1.96 above 30)."""
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.96


def mean_ci95(values: Sequence[float]) -> dict[str, float]:
    """``{"mean", "lo", "hi", "n"}``: the mean and its two-sided 95% t-interval (NaN bounds for n < 2)."""
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0}
    mean = float(x.mean())
    half = t975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": n}


def format_ci(stats: dict[str, float], digits: int = 1) -> str:
    """``"1234.5 [1200.1, 1268.9]"`` (the interval left out when undefined)."""
    if not math.isfinite(stats.get("lo", math.nan)):
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} [{stats['lo']:.{digits}f}, {stats['hi']:.{digits}f}]"


@torch.no_grad()
def episode_returns(policy: Any, ckpt: dict[str, Any], episodes: int, seed: int,
                    max_steps: int | None = None) -> np.ndarray:
    """Returns of the deployed ``policy`` over ``episodes`` episodes of the env of ``ckpt`` (made by
    its algorithm's export adapter, with the preprocessing it trained on), env seeds ``seed + i``."""
    from edgerl.export.observations import input_dtype, obs_space
    from edgerl.export.registry import export_adapter

    env = export_adapter(ckpt["algo"]).make_env(ckpt, None)
    dtype = input_dtype(obs_space(ckpt))

    state = [policy.initial_state(1)]  # a recurrent policy's memory, zeroed at every episode start

    def act(obs: np.ndarray) -> Any:
        action_t, state[0] = policy.step(torch.as_tensor(np.asarray(obs, dtype=dtype)[None]), state[0])
        action = action_t.numpy()[0]
        return int(action) if policy.discrete else action

    def reset() -> None:
        state[0] = policy.initial_state(1)

    return episode_returns_of(env, act, episodes, seed, max_steps, reset)

"""What every training run shares: the run folder, metrics.csv, the progress bar, evaluation,
and the hook protocol through which pruning joins a training loop."""

from __future__ import annotations

import csv
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgerl.envs import make_env

METRIC_COLUMNS = [
    "step", "wall_s", "sps", "train_return", "eval_return", "eval_std",
    "qf_loss", "actor_loss", "alpha", "entropy", "loss", "value_loss", "approx_kl", "clipfrac",
    "q", "epsilon", "ofe_loss", "gate_params", "gate_lambda", "params", "prune_ratio",
]


class TrainHook(Protocol):
    """Something that acts on the agent during training (a pruner) and is checkpointed with it."""

    name: str

    def after_update(self, agent: Any, global_step: int) -> dict[str, float] | None:
        """Called after each gradient update; may change the agent's networks."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class MetricsLog:
    """Append-only ``metrics.csv``; on resume, rows past the checkpoint's step are dropped, so a
    run killed between checkpoints does not leave duplicated steps."""

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = path
        if resume_step is not None and path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("step") and int(float(r["step"])) <= resume_step]
            self._rewrite(rows)
        elif not path.exists() or resume_step is None:
            self._rewrite([])

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, METRIC_COLUMNS)
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.path)

    def write(self, **values: Any) -> None:
        row = {k: _fmt(v) for k, v in values.items() if k in METRIC_COLUMNS}
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, METRIC_COLUMNS).writerow(row)


def _fmt(v: Any) -> str:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


class Progress:
    """A progress bar with steps/s and the last evaluation return (plain lines when not a TTY)."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str):
        self.enabled = enabled
        self.bar = None
        self.total = total
        self.last_print = 0.0
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)

    def update(self, step: int, info: dict[str, Any]) -> None:
        if not self.enabled:
            return
        text = "  ".join(f"{k}={v}" for k, v in info.items() if v is not None)
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix_str(text, refresh=True)
        elif time.monotonic() - self.last_print > 5.0 or step >= self.total:
            self.last_print = time.monotonic()
            print(f"[{step}/{self.total}] {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def evaluate(act: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int, seed: int,
             to_env_action: Callable[[np.ndarray], Any] | None = None, max_steps: int | None = None,
             env_kwargs: dict[str, Any] | None = None) -> np.ndarray:
    """Returns of ``episodes`` episodes of a deterministic policy, env seeds ``seed + i``."""
    env = make_env(env_id, **(env_kwargs or {}))
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done, total, n = False, 0.0, 0
            while not done:
                a = act(obs)
                obs, r, term, trunc, _ = env.step(to_env_action(a) if to_env_action else a)
                total += float(r)
                n += 1
                done = term or trunc or (max_steps is not None and n >= max_steps)
            returns.append(total)
    finally:
        env.close()
    return np.asarray(returns, dtype=np.float64)


def count_params(*nets) -> int:
    """Number of parameters of the given modules."""
    return sum(p.numel() for n in nets for p in n.parameters())

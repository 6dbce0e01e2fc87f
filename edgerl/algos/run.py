"""What every training run shares: the run folder, metrics.csv, the progress bar, evaluation,
and the hook protocol through which pruning joins a training loop."""

from __future__ import annotations

import csv
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgerl.envs import episode_returns_of, make_env

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgerl.algos.agent import Agent

METRIC_COLUMNS = [
    "step", "wall_s", "sps", "train_return", "eval_return", "eval_std",
    "qf_loss", "actor_loss", "alpha", "entropy", "loss", "value_loss", "approx_kl", "clipfrac",
    "q", "epsilon", "ofe_loss", "gate_params", "gate_lambda", "params", "prune_ratio",
]


class TrainHook(Protocol):
    """Something that acts on the agent during training (a pruner) and is checkpointed with it."""

    name: str

    def after_update(self, agent: Agent, global_step: int) -> dict[str, float] | None:
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


def read_metrics(path: Path) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv`` as written (strings; ``""`` where a column was not logged)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def logged_evals(path: Path) -> list[dict[str, str]]:
    """The rows of a run's ``metrics.csv`` at which it evaluated its policy (``eval_return`` set)."""
    return [r for r in read_metrics(path) if r.get("eval_return")]


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
    def step_action(obs: np.ndarray) -> Any:
        a = act(obs)
        return to_env_action(a) if to_env_action else a

    return episode_returns_of(make_env(env_id, **(env_kwargs or {})), step_action, episodes, seed, max_steps)


def start_run(run: Any) -> tuple[torch.device, Path, np.random.Generator]:
    """What every trainer does first: resolve ``run.device``, create ``run.out``, set torch's
    thread count and seed, and return the device, the folder and the numpy generator of the run."""
    import torch

    from edgerl.algos.agent import resolve_device

    device = resolve_device(run.device)
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)
    return device, out, np.random.default_rng(run.seed)


def crossed(prev: int, now: int, every: int) -> bool:
    """Whether ``(prev, now]`` contains a multiple of ``every`` (never for ``every <= 0``)."""
    return every > 0 and now // every > prev // every


def count_params(*nets: nn.Module) -> int:
    """Number of parameters of the given modules."""
    return sum(p.numel() for n in nets for p in n.parameters())


def resume_agent(out: Path, algo: str, env_id: str, agent: Agent, np_rng: np.random.Generator) -> dict[str, Any]:
    """Load ``out/ckpt.pt``, check it is an ``algo`` run on ``env_id``, and restore the agent
    (networks rebuilt at their saved widths) and the RNG states. Returns the checkpoint."""
    from edgerl.checkpoint import load_checkpoint, restore_rng
    from edgerl.errors import CheckpointError

    path = out / "ckpt.pt"
    ckpt = load_checkpoint(path)
    check_resumable(ckpt, path)
    if ckpt["env"]["id"] != env_id or ckpt["algo"] != algo:
        raise CheckpointError(f"{path} is a {ckpt['algo']} run on {ckpt['env']['id']}, "
                              f"not {algo} on {env_id}; resume it with its own settings or start a new --out")
    remove_stale_temp_files(out)
    for what, restore in (("agent state", lambda: agent.load_state(ckpt["agent"])),
                          ("RNG state", lambda: restore_rng(ckpt["rng"], np_rng))):
        try:
            restore()
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from None
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
            detail = (str(e).strip().splitlines() or [""])[0][:160]
            raise CheckpointError(f"{path}: cannot restore its {what} ({type(e).__name__}: {detail}); the checkpoint "
                                  f"is damaged or is not a {algo} run: start a new --out") from None
    return ckpt


REPLAY_NAME = re.compile(r"replay-\d+\.npz")
"""The only replay file names a checkpoint may point to (a file in its own run folder)."""


def check_resumable(ckpt: dict[str, Any], path: Path) -> None:
    """A train checkpoint with the entries a resumed run reads: counters, RNG states, agent
    state, a replay name inside the run folder. One-line :class:`CheckpointError` otherwise."""
    from edgerl.errors import CheckpointError

    if ckpt.get("kind") != "train":
        raise CheckpointError(f"{path} is a {str(ckpt.get('kind'))[:40]!r} checkpoint, not a training one; "
                              "only a run folder written by edgerl train can be resumed")
    counters = ckpt.get("counters")
    if not isinstance(counters, dict) or not all(
            isinstance(counters.get(k), int) and not isinstance(counters.get(k), bool) and counters[k] >= 0
            for k in ("global_step", "episodes")):
        raise CheckpointError(f"{path}: checkpoint lacks valid counters (global_step, episodes); "
                              "the file is damaged: start a new --out")
    if not isinstance(ckpt.get("rng"), dict):
        raise CheckpointError(f"{path}: checkpoint lacks its RNG states; the file is damaged: start a new --out")
    config = ckpt.get("config")
    if not all(isinstance(config.get(k), dict) for k in ("run", "algo", "prune")):
        raise CheckpointError(f"{path}: checkpoint lacks its resolved config (run, algo, prune); "
                              "the file is damaged: start a new --out")
    replay = ckpt.get("replay")
    if replay is not None and not (isinstance(replay, str) and REPLAY_NAME.fullmatch(replay)):
        raise CheckpointError(f"{path}: checkpoint names replay file {str(replay)[:80]!r}; edgerl only reads "
                              "replay-<step>.npz inside the run folder: the file is damaged or was edited")


def remove_stale_temp_files(out: Path) -> list[str]:
    """Delete temp files an interrupted atomic write left in the run folder (``.NAME.*.tmp``
    beside ckpt.pt, metrics.csv and the replay buffer); returns their names."""
    removed = []
    for tmp in out.glob(".*.tmp"):
        if tmp.is_file() and (tmp.name.startswith((".ckpt.pt.", ".replay-")) or tmp.name.startswith(".metrics.csv")):
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    metrics_tmp = out / "metrics.csv.tmp"
    if metrics_tmp.is_file():
        metrics_tmp.unlink()
        removed.append(metrics_tmp.name)
    return removed


def attach_hooks(make_hooks: Callable[..., list[TrainHook]] | None, agent: Agent, run: Any, algo_cfg: Any,
                 prune: Any, ckpt: dict[str, Any] | None = None) -> list[TrainHook]:
    """Create the training hooks on the agent's networks as they are now, so call it after
    :func:`resume_agent` (hooks hold references to the networks they prune), then restore each
    hook's state from ``ckpt``."""
    from edgerl.errors import CheckpointError

    if ckpt is None:
        hooks = make_hooks(agent, run, algo_cfg, prune) if make_hooks else []
    else:  # the RNG states were just restored: building hooks (tracing graphs) must not advance them
        import torch

        with torch.random.fork_rng(devices=[]):
            hooks = make_hooks(agent, run, algo_cfg, prune) if make_hooks else []
    for h in hooks if ckpt is not None else ():
        assert ckpt is not None
        if h.name not in ckpt.get("hooks", {}):
            raise CheckpointError(f"the checkpoint has no state for the {h.name!r} pruner this run uses")
        h.load_state_dict(ckpt["hooks"][h.name])
    return hooks


def save_train_checkpoint(out: Path, *, algo: str, env: dict[str, Any], run: Any, algo_cfg: Any, prune: Any,
                          agent: Agent, hooks: list[TrainHook], counters: dict[str, Any], np_rng: np.random.Generator,
                          last_eval: tuple[float, float], replay: str | None = None) -> None:
    """Write ``out/ckpt.pt`` atomically, then delete replay files other than ``replay``."""
    from edgerl.algos.agent import to_cpu
    from edgerl.checkpoint import rng_state, save_checkpoint
    from edgerl.config import to_dict

    save_checkpoint(out / "ckpt.pt", to_cpu({
        "kind": "train", "algo": algo, "env": env,
        "config": {"run": to_dict(run), "algo": to_dict(algo_cfg), "prune": to_dict(prune)},
        "agent": agent.state(), "hooks": {h.name: h.state_dict() for h in hooks},
        "counters": counters, "rng": rng_state(np_rng), "replay": replay,
        "eval": {"return_mean": last_eval[0], "return_std": last_eval[1]},
    }))
    for old in out.glob("replay-*.npz"):
        if old.name != replay:
            old.unlink(missing_ok=True)

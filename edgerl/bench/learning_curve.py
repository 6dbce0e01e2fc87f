"""A PPO run's learning curve from its ``metrics.csv``, and its latest policy scored against
chance (``tools/learn_ppo.py``): environment steps vs the last training episode's game score and
the greedy policy's evaluation score."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgerl.algos.run import read_metrics

CURVE_KEYS = ("step", "wall_s", "sps", "train_return", "eval_return", "eval_std", "params")
"""The ``metrics.csv`` columns of a curve row."""


def read_curve(metrics: Path) -> list[dict[str, float]]:
    """Rows of ``metrics.csv`` as (step, wall_s, sps, train_return, eval_return, eval_std, params),
    NaN where a value was not logged; no rows when the file does not exist yet."""
    if not metrics.exists():
        return []
    return [{k: float(r[k]) if r.get(k) not in (None, "", "None") else math.nan for k in CURVE_KEYS}
            for r in read_metrics(metrics)]


def format_curve(rows: list[dict[str, float]]) -> str:
    """A Markdown table of the curve."""
    lines = ["| step | wall (min) | samples/s | last train game score | greedy eval score (mean +- std) |",
             "|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {int(r['step'])} | {r['wall_s'] / 60:.1f} | {r['sps']:.0f} | {r['train_return']:.1f} "
                     f"| {r['eval_return']:.1f} +- {r['eval_std']:.1f} |")
    return "\n".join(lines)


def final_eval(ckpt_path: Path, episodes: int, seed: int = 20_000) -> dict[str, dict[str, Any]]:
    """Game scores of the checkpoint's policy (actions sampled from its logits, as in training:
    a greedy Breakout policy that never presses FIRE after a lost life stalls until the episode
    cap) and of a uniformly random policy, ``episodes`` whole games each on the same seeds (the
    evaluation env of training: no life loss ends, raw scores, the run's episode cap)."""
    import numpy as np
    import torch

    from edgerl.algos.atari import evaluate_image_policy
    from edgerl.algos.ppo import PPOConfig
    from edgerl.checkpoint import load_checkpoint
    from edgerl.config import from_sources
    from edgerl.export.policy import policy_from_checkpoint

    ckpt = load_checkpoint(ckpt_path)
    cfg = from_sources(PPOConfig, ckpt["config"]["algo"])
    policy = policy_from_checkpoint(ckpt)
    n_actions = int(ckpt["env"]["action_space"]["n"])
    rng = np.random.default_rng(seed)

    @torch.no_grad()
    def sampled(obs: np.ndarray) -> int:
        logits = policy.scores(torch.as_tensor(obs).unsqueeze(0))[0]
        return int(torch.distributions.Categorical(logits=logits).sample())

    out = {}
    torch.manual_seed(seed)
    for name, act in (("latest policy (sampled, as trained)", sampled),
                      ("uniform random policy", lambda _: int(rng.integers(n_actions)))):
        scores = evaluate_image_policy(act, ckpt["env"]["id"], cfg, episodes, seed=seed)
        out[name] = {"mean": float(scores.mean()), "std": float(scores.std()), "games": episodes,
                     "scores": [float(x) for x in scores]}
    return out


def curve_markdown(env: str, finished: bool, command: str, rows: list[dict[str, float]],
                   finals: dict[str, dict[str, Any]], games: int, paper_command: str) -> str:
    """The curve page: the run's command, the curve, the latest policy vs chance (``finals`` of
    :func:`final_eval` over ``games`` games each, when given) and the paper-scale command."""
    final_lines = [f"- {k}: {v['mean']:.1f} +- {v['std']:.1f} over {v['games']} games (same seeds)"
                   for k, v in finals.items()]
    return "\n".join([
        f"# PPO learning curve: {env} ({'finished' if finished else 'partial'}, {len(rows)} points)",
        "", f"Command: `{command}`", "", format_curve(rows), "",
        "Train score: the game score of the last training episode finished before the row (sampled policy);",
        "eval score: greedy (argmax) policy, whole games, no reward clipping.", "",
        *([f"Latest checkpoint vs chance ({games} games each):", "", *final_lines, ""] if finals else []),
        f"Paper-scale run (Impala tau=3, 25 M steps, group pruning to 0.8; days on a CPU): `{paper_command}`",
    ])

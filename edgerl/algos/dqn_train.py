"""The DQN environment loop: epsilon-greedy vectorised acting, replay, updates, target syncs,
evaluation, checkpoints and resume.

``global_step`` counts env steps summed over envs. Updates are due at one per ``train_every``
steps after ``learning_starts``; the target is synced whenever a multiple of ``target_update``
is crossed. A resumed run restarts its envs: the replay memory ends their episodes there as
truncations (see ``FrameReplay.load``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from edgerl.algos.atari import (
    episode_returns,
    evaluate_image_policy,
    final_observations,
    image_env_info,
    make_image_env,
    make_vector_env,
)
from edgerl.algos.dqn import DQNAgent, DQNConfig, FrameReplay
from edgerl.algos.run import (
    MetricsLog,
    Progress,
    TrainHook,
    attach_hooks,
    count_params,
    crossed,
    resume_agent,
    save_train_checkpoint,
    start_run,
)
from edgerl.config import PruneConfig, RunConfig
from edgerl.errors import ConfigError

HookFactory = Callable[[DQNAgent, RunConfig, DQNConfig, PruneConfig], list[TrainHook]]


def epsilon(cfg: DQNConfig, step: int, total_steps: int) -> float:
    """Linear decay from ``start_e`` to ``end_e`` over ``exploration_fraction`` of training."""
    span = max(1.0, cfg.exploration_fraction * total_steps)
    return cfg.start_e + min(1.0, step / span) * (cfg.end_e - cfg.start_e)


def validate_dqn(cfg: DQNConfig) -> None:
    if cfg.n_step < 1 or cfg.train_every < 1 or cfg.target_update < 1 or cfg.batch_size < 1:
        raise ConfigError("--n-step, --train-every, --target-update and --batch-size must be at least 1")
    if not 0.0 <= cfg.end_e <= cfg.start_e <= 1.0:
        raise ConfigError(f"need 0 <= --end-e <= --start-e <= 1, got {cfg.end_e}, {cfg.start_e}")


def train_dqn(run: RunConfig, cfg: DQNConfig, prune: PruneConfig, resume: bool = False,
              make_hooks: HookFactory | None = None) -> dict[str, Any]:
    """Train (or continue) a DQN run in ``run.out``; returns a summary dict."""
    validate_dqn(cfg)
    device, out, rng = start_run(run)

    envs = make_vector_env(run.env, cfg, cfg.num_envs, seed=run.seed)
    eval_env = make_image_env(run.env, cfg, train=False)
    info = image_env_info(envs, run.env, cfg)
    obs_shape = tuple(info["observation_space"]["shape"])
    n_actions = info["action_space"]["n"]
    agent = DQNAgent(cfg, obs_shape, n_actions, device)
    buffer = FrameReplay(min(cfg.buffer_size, max(run.total_steps, cfg.num_envs * (cfg.n_step + cfg.frame_stack + 1))),
                         cfg.num_envs, obs_shape, cfg.frame_stack, cfg.n_step, cfg.gamma, cfg.prioritized, cfg.per_alpha)
    step, episodes, wall_before = 0, 0, 0.0

    ckpt = resume_agent(out, "dqn", info["id"], agent, rng) if resume else None
    if ckpt is not None:
        if ckpt.get("replay"):
            buffer.load(out / ckpt["replay"])
        step, episodes = ckpt["counters"]["global_step"], ckpt["counters"]["episodes"]
        wall_before = ckpt["counters"].get("wall_s", 0.0)
    hooks = attach_hooks(make_hooks, agent, run, cfg, prune, ckpt)

    log = MetricsLog(out / "metrics.csv", resume_step=step if resume else None)
    progress = Progress(run.total_steps, step, run.progress, f"dqn {run.env}")

    def run_eval() -> tuple[float, float]:
        rets = evaluate_image_policy(agent.greedy, run.env, cfg, run.eval_episodes,
                                     seed=run.seed + 10_000, env=eval_env)
        return float(rets.mean()), float(rets.std())

    def checkpoint() -> None:
        replay_name = f"replay-{step}.npz"
        buffer.save(out / replay_name, obs)
        save_train_checkpoint(
            out, algo="dqn", env=info, run=run, algo_cfg=cfg, prune=prune, agent=agent, hooks=hooks,
            counters={"global_step": step, "episodes": episodes, "updates": agent.updates,
                      "wall_s": wall_before + time.monotonic() - t0},
            np_rng=rng, last_eval=last_eval, replay=replay_name)

    t0 = time.monotonic()
    t_window, s_window = t0, step
    sps, last_eval, last_train_return = 0.0, (float("nan"), float("nan")), None
    metrics: dict[str, Any] = {}
    obs, _ = envs.reset(seed=run.seed + step)
    first = np.ones(cfg.num_envs, dtype=bool)
    start = max(cfg.learning_starts, cfg.num_envs * (cfg.n_step + 1))  # the replay can serve a batch
    while step < run.total_steps:
        prev_step = step
        eps = epsilon(cfg, step, run.total_steps)
        actions = agent.act(obs)
        explore = rng.random(cfg.num_envs) < eps
        actions[explore] = rng.integers(0, n_actions, int(explore.sum()))
        next_obs, reward, terminated, truncated, env_info = envs.step(actions)
        done = terminated | truncated
        buffer.add(obs, actions, reward, terminated, truncated, first, final_observations(env_info, truncated, next_obs))
        obs, first = next_obs, done
        step += cfg.num_envs
        for r in episode_returns(env_info):
            episodes += 1
            last_train_return = r

        due = (step - start) // cfg.train_every if step >= start else 0
        while agent.updates < due:
            beta = cfg.per_beta + (1.0 - cfg.per_beta) * min(1.0, step / run.total_steps)
            batch = buffer.sample(cfg.batch_size, rng, beta)
            metrics = agent.update({k: v.to(device, non_blocking=True) for k, v in batch.items()})
            buffer.update_priorities(batch["index"], metrics.pop("td_abs"))
            for h in hooks:
                metrics.update(h.after_update(agent, step) or {})
        if crossed(prev_step, step, cfg.target_update):
            agent.sync_target()

        done_now = step >= run.total_steps
        eval_now = done_now or crossed(prev_step, step, run.eval_every)
        if crossed(prev_step, step, 1000) or eval_now:
            now = time.monotonic()
            sps = (step - s_window) / max(now - t_window, 1e-9)
            t_window, s_window = now, step
            progress.update(step, {"sps": f"{sps:.0f}", "eps": f"{eps:.2f}", "eval": f"{last_eval[0]:.1f}",
                                   "train": None if last_train_return is None else f"{last_train_return:.1f}"})
        if eval_now:
            last_eval = run_eval()
            log.write(step=step, wall_s=wall_before + time.monotonic() - t0, sps=sps, train_return=last_train_return,
                      eval_return=last_eval[0], eval_std=last_eval[1], params=count_params(agent.q_network), **metrics)
        if done_now or crossed(prev_step, step, run.checkpoint_every):
            checkpoint()
    progress.close()
    envs.close()
    eval_env.close()
    return {
        "env": run.env, "steps": step, "episodes": episodes, "wall_s": wall_before + time.monotonic() - t0,
        "eval_return": last_eval[0], "eval_std": last_eval[1], "updates": agent.updates,
        "params": count_params(agent.q_network),
        "widths": agent.q_network.spec()["encoder"]["kwargs"]["channels"],
        "checkpoint": str(out / "ckpt.pt"),
    }

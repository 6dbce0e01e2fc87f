"""The PPO rollout loop: vectorised acting, GAE, updates, evaluation, checkpoints and resume.

Counters advance by ``num_envs x num_steps`` per iteration; evaluation and checkpoints happen
at the first iteration end at or past each multiple of ``eval_every`` / ``checkpoint_every``.
A resumed run starts a fresh rollout (env states are not saved; envs reset with new seeds).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from edgerl.algos.atari import (
    episode_returns,
    evaluate_image_policy,
    final_observations,
    image_env_info,
    make_image_env,
    make_vector_env,
)
from edgerl.algos.ppo import PPOAgent, PPOConfig, compute_gae
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

HookFactory = Callable[[PPOAgent, RunConfig, PPOConfig, PruneConfig], list[TrainHook]]


def validate_ppo(cfg: PPOConfig) -> None:
    if cfg.num_steps < 1 or cfg.num_minibatches < 1 or cfg.update_epochs < 1:
        raise ConfigError("--num-steps, --num-minibatches and --update-epochs must be at least 1")
    if cfg.num_minibatches > cfg.num_envs * cfg.num_steps:
        raise ConfigError(f"--num-minibatches {cfg.num_minibatches} exceeds the rollout size "
                          f"{cfg.num_envs * cfg.num_steps} (num_envs x num_steps); lower it")


def train_ppo(run: RunConfig, cfg: PPOConfig, prune: PruneConfig, resume: bool = False,
              make_hooks: HookFactory | None = None) -> dict[str, Any]:
    """Train (or continue) a PPO run in ``run.out``; returns a summary dict."""
    validate_ppo(cfg)
    device, out, rng = start_run(run)

    envs = make_vector_env(run.env, cfg, cfg.num_envs, seed=run.seed)
    eval_env = make_image_env(run.env, cfg, train=False)
    info = image_env_info(envs, run.env, cfg)
    obs_shape = tuple(info["observation_space"]["shape"])
    agent = PPOAgent(cfg, obs_shape, info["action_space"]["n"], device)
    step, episodes, wall_before = 0, 0, 0.0

    ckpt = resume_agent(out, "ppo", info["id"], agent, rng) if resume else None
    if ckpt is not None:
        step, episodes = ckpt["counters"]["global_step"], ckpt["counters"]["episodes"]
        wall_before = ckpt["counters"].get("wall_s", 0.0)
    hooks = attach_hooks(make_hooks, agent, run, cfg, prune, ckpt)

    log = MetricsLog(out / "metrics.csv", resume_step=step if resume else None)
    progress = Progress(run.total_steps, step, run.progress, f"ppo {run.env}")
    T, N = cfg.num_steps, cfg.num_envs
    buf_obs = torch.zeros((T, N, *obs_shape), dtype=torch.uint8, device=device)
    buf = {k: torch.zeros(T, N, device=device) for k in ("logprobs", "values", "rewards", "dones")}
    buf_actions = torch.zeros(T, N, dtype=torch.long, device=device)

    def run_eval() -> tuple[float, float]:
        rets = evaluate_image_policy(agent.greedy, run.env, cfg, run.eval_episodes,
                                     seed=run.seed + 10_000, env=eval_env)
        return float(rets.mean()), float(rets.std())

    def checkpoint() -> None:
        save_train_checkpoint(
            out, algo="ppo", env=info, run=run, algo_cfg=cfg, prune=prune, agent=agent, hooks=hooks,
            counters={"global_step": step, "episodes": episodes, "updates": agent.updates,
                      "wall_s": wall_before + time.monotonic() - t0},
            np_rng=rng, last_eval=last_eval)

    t0 = time.monotonic()
    last_eval, last_train_return = (float("nan"), float("nan")), None
    obs, _ = envs.reset(seed=run.seed + step)
    while step < run.total_steps:
        t_iter, prev_step = time.monotonic(), step
        if cfg.anneal_lr:
            agent.set_lr(cfg.lr * max(0.0, 1.0 - step / run.total_steps))
        for t in range(T):
            buf_obs[t] = torch.from_numpy(obs)
            action, logprob, value = agent.act(obs)
            obs, reward, terminated, truncated, env_info = envs.step(action)
            done = terminated | truncated
            reward = agent.reward_norm(reward, done) if cfg.norm_reward else reward.astype(np.float32)
            cut = truncated & ~terminated  # time limit: bootstrap from the episode's last observation
            if cut.any():
                final = final_observations(env_info, cut, obs)
                reward = reward + cfg.gamma * cut * agent.value(final).cpu().numpy()
            buf_actions[t] = torch.from_numpy(action)
            buf["logprobs"][t], buf["values"][t] = logprob, value
            buf["rewards"][t] = torch.as_tensor(reward, dtype=torch.float32)
            buf["dones"][t] = torch.from_numpy(done.astype(np.float32))
            for r in episode_returns(env_info):
                episodes += 1
                last_train_return = r
        step += T * N

        advantages, returns = compute_gae(buf["rewards"], buf["values"], buf["dones"], agent.value(obs),
                                          cfg.gamma, cfg.gae_lambda)
        metrics = agent.update({
            "obs": buf_obs.flatten(0, 1), "actions": buf_actions.flatten(), "logprobs": buf["logprobs"].flatten(),
            "values": buf["values"].flatten(), "advantages": advantages.flatten(), "returns": returns.flatten(),
        })
        for h in hooks:
            metrics.update(h.after_update(agent, step) or {})

        sps = (step - prev_step) / max(time.monotonic() - t_iter, 1e-9)
        done_now = step >= run.total_steps
        progress.update(step, {"sps": f"{sps:.0f}", "eval": f"{last_eval[0]:.1f}",
                               "train": None if last_train_return is None else f"{last_train_return:.1f}"})
        if done_now or crossed(prev_step, step, run.eval_every):
            last_eval = run_eval()
            log.write(step=step, wall_s=wall_before + time.monotonic() - t0, sps=sps, train_return=last_train_return,
                      eval_return=last_eval[0], eval_std=last_eval[1], params=count_params(agent.net), **metrics)
        if done_now or crossed(prev_step, step, run.checkpoint_every):
            checkpoint()
    progress.close()
    envs.close()
    eval_env.close()
    return {
        "env": run.env, "steps": step, "episodes": episodes, "wall_s": wall_before + time.monotonic() - t0,
        "eval_return": last_eval[0], "eval_std": last_eval[1],
        "params": count_params(agent.net), "widths": agent.net.spec()["encoder"]["kwargs"]["channels"],
        "checkpoint": str(out / "ckpt.pt"),
    }

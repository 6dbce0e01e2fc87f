"""The SAC environment loop: warm-up, acting, learning, evaluation, checkpoints and resume."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgerl.algos.replay import ReplayBuffer
from edgerl.algos.run import (
    MetricsLog,
    Progress,
    TrainHook,
    attach_hooks,
    count_params,
    evaluate,
    resume_agent,
    save_train_checkpoint,
)
from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.config import PruneConfig, RunConfig
from edgerl.envs import action_bounds, make_env, space_env_info
from edgerl.errors import ConfigError

HookFactory = Callable[[SACAgent, RunConfig, SACConfig, PruneConfig], list[TrainHook]]


def ofenet_pretrain_steps(cfg: SACConfig) -> int:
    """OFENet pre-training updates: the paper's 10k updates follow 10k random transitions; with a
    shorter warm-up (a tiny run) the phase shrinks in proportion, one update per transition."""
    return max(0, min(cfg.ofenet_pretrain_steps, max(cfg.learning_starts, cfg.batch_size)))


def train_sac(run: RunConfig, cfg: SACConfig, prune: PruneConfig, resume: bool = False,
              make_hooks: HookFactory | None = None) -> dict[str, Any]:
    """Train (or continue) a SAC run in ``run.out``; returns a summary dict."""
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)
    rng = np.random.default_rng(run.seed)

    env = make_env(run.env, seed=run.seed)
    info = space_env_info(env)
    if info["action_space"]["kind"] != "box" or len(info["observation_space"]["shape"]) != 1:
        raise ConfigError(f"SAC needs a flat Box observation and a Box action space; {run.env} has "
                          f"{info['observation_space']} / {info['action_space']}")
    obs_dim = info["observation_space"]["shape"][0]
    act_dim = info["action_space"]["shape"][0]
    low, high = action_bounds(info)

    agent = SACAgent(cfg, obs_dim, act_dim)
    buffer = ReplayBuffer(min(cfg.buffer_size, run.total_steps), (obs_dim,), (act_dim,))
    step, episodes, wall_before = 0, 0, 0.0

    ckpt = resume_agent(out, "sac", info["id"], agent, rng) if resume else None
    if ckpt is not None:
        if ckpt.get("replay"):
            buffer.load(out / ckpt["replay"])
        step, episodes = ckpt["counters"]["global_step"], ckpt["counters"]["episodes"]
        wall_before = ckpt["counters"].get("wall_s", 0.0)
    hooks = attach_hooks(make_hooks, agent, run, cfg, prune, ckpt)

    log = MetricsLog(out / "metrics.csv", resume_step=step if resume else None)
    progress = Progress(run.total_steps, step, run.progress, f"sac {run.env}")

    def to_env(a: np.ndarray) -> np.ndarray:
        return low + (a + 1.0) * 0.5 * (high - low)

    def run_eval() -> tuple[float, float]:
        rets = evaluate(lambda o: agent.act(o, deterministic=True), run.env, run.eval_episodes,
                        seed=run.seed + 10_000, to_env_action=to_env)
        return float(rets.mean()), float(rets.std())

    def checkpoint() -> None:
        replay_name = f"replay-{step}.npz"
        buffer.save(out / replay_name)
        save_train_checkpoint(
            out, algo="sac", env=info, run=run, algo_cfg=cfg, prune=prune, agent=agent, hooks=hooks,
            counters={"global_step": step, "episodes": episodes, "updates": agent.updates,
                      "wall_s": wall_before + time.monotonic() - t0},
            np_rng=rng, last_eval=last_eval, replay=replay_name)

    t0 = time.monotonic()
    t_window, s_window = t0, step
    sps, last_eval, last_train_return = 0.0, (float("nan"), float("nan")), None
    metrics: dict[str, Any] = {}
    obs, _ = env.reset(seed=run.seed + episodes)
    agent.normalizer.update(torch.as_tensor(obs).unsqueeze(0))
    ep_return = 0.0
    while step < run.total_steps:
        if step < cfg.learning_starts:
            a = rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
        else:
            a = agent.act(obs)
        next_obs, reward, terminated, truncated, _ = env.step(to_env(a))
        buffer.add(obs, a, reward, next_obs, terminated)
        agent.normalizer.update(torch.as_tensor(next_obs).unsqueeze(0))
        ep_return += float(reward)
        obs = next_obs
        step += 1
        if terminated or truncated:
            episodes += 1
            last_train_return, ep_return = ep_return, 0.0
            obs, _ = env.reset()

        if step >= cfg.learning_starts and buffer.size >= cfg.batch_size:
            if agent.ofenet is not None and agent.ofenet_updates == 0:  # OFENet pre-training phase
                for _ in range(ofenet_pretrain_steps(cfg)):
                    metrics = agent.update_ofenet(buffer.sample(cfg.batch_size, rng))
                    for h in hooks:
                        metrics.update(h.after_update(agent, step) or {})
            metrics = agent.update(buffer.sample(cfg.batch_size, rng))
        for h in hooks:  # every step, so a schedule never misses its steps during warm-up
            metrics.update(h.after_update(agent, step) or {})

        if step % 1000 == 0 or step == run.total_steps:
            now = time.monotonic()
            sps = (step - s_window) / max(now - t_window, 1e-9)
            t_window, s_window = now, step
            progress.update(step, {"sps": f"{sps:.0f}", "eval": f"{last_eval[0]:.1f}",
                                   "train": None if last_train_return is None else f"{last_train_return:.1f}"})
        eval_now = step == run.total_steps or (run.eval_every > 0 and step % run.eval_every == 0)
        if eval_now:
            last_eval = run_eval()
            log.write(step=step, wall_s=wall_before + time.monotonic() - t0, sps=sps, train_return=last_train_return,
                      eval_return=last_eval[0], eval_std=last_eval[1],
                      params=count_params(*agent.deployed_nets().values()), **metrics)
        if step == run.total_steps or (run.checkpoint_every > 0 and step % run.checkpoint_every == 0):
            checkpoint()
    progress.close()
    env.close()
    wall = wall_before + time.monotonic() - t0
    return {
        "env": run.env, "steps": step, "episodes": episodes, "wall_s": wall,
        "eval_return": last_eval[0], "eval_std": last_eval[1],
        "actor_params": count_params(agent.actor),
        "deployed_params": count_params(*agent.deployed_nets().values()),
        "actor_widths": agent.actor.spec()["hidden"],
        "checkpoint": str(out / "ckpt.pt"),
    }

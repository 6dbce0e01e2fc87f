"""The SAC environment loop: warm-up, acting, learning, evaluation, checkpoints and resume."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from edgerl.algos.replay import DeviceReplayBuffer, make_replay
from edgerl.algos.run import (
    MetricsLog,
    Progress,
    TrainHook,
    attach_hooks,
    count_params,
    crossed,
    evaluate,
    resume_agent,
    save_train_checkpoint,
    start_run,
)
from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.algos.vector import StepEnvs
from edgerl.config import PruneConfig, RunConfig
from edgerl.envs import action_bounds, space_env_info
from edgerl.errors import ConfigError

HookFactory = Callable[[SACAgent, RunConfig, SACConfig, PruneConfig], list[TrainHook]]


def ofenet_pretrain_steps(cfg: SACConfig) -> int:
    """OFENet pre-training updates: the paper's 10k updates follow 10k random transitions; with a
    shorter warm-up (a tiny run) the phase shrinks in proportion, one update per transition."""
    return max(0, min(cfg.ofenet_pretrain_steps, max(cfg.learning_starts, cfg.batch_size)))


def first_update_step(cfg: SACConfig) -> int:
    """The env step at which learning starts (after the warm-up, with a full first batch)."""
    return max(cfg.learning_starts, cfg.batch_size)


def updates_due(cfg: SACConfig, step: int) -> int:
    """SAC updates the run should have made after ``step`` env steps: ``updates_per_step`` per
    transition from :func:`first_update_step` on (one per step by default, as in CleanRL)."""
    first = first_update_step(cfg)
    return 0 if step < first else int((step - first + 1) * cfg.updates_per_step)


def validate_sac(cfg: SACConfig) -> None:
    if not cfg.updates_per_step > 0:
        raise ConfigError(f"--updates-per-step must be positive, got {cfg.updates_per_step}")
    if cfg.num_envs < 1:
        raise ConfigError(f"--num-envs must be at least 1, got {cfg.num_envs}")
    if cfg.autocast not in ("none", "bf16"):
        raise ConfigError(f"--autocast {cfg.autocast!r}: choose none or bf16")


def train_sac(run: RunConfig, cfg: SACConfig, prune: PruneConfig, resume: bool = False,
              make_hooks: HookFactory | None = None) -> dict[str, Any]:
    """Train (or continue) a SAC run in ``run.out``; returns a summary dict."""
    validate_sac(cfg)
    device, out, rng = start_run(run)

    envs = StepEnvs(run.env, cfg.num_envs, run.seed, cfg.vector_mode)
    info = space_env_info(envs.single)
    if info["action_space"]["kind"] != "box" or len(info["observation_space"]["shape"]) != 1:
        envs.close()
        raise ConfigError(f"SAC needs a flat Box observation and a Box action space; {run.env} has "
                          f"{info['observation_space']} / {info['action_space']}")
    obs_dim = info["observation_space"]["shape"][0]
    act_dim = info["action_space"]["shape"][0]
    low, high = action_bounds(info)
    n_envs = cfg.num_envs

    agent = SACAgent(cfg, obs_dim, act_dim, device)
    buffer = make_replay(min(cfg.buffer_size, run.total_steps), (obs_dim,), (act_dim,), device, run.seed)
    step, episodes, wall_before = 0, 0, 0.0

    ckpt = resume_agent(out, "sac", info["id"], agent, rng) if resume else None
    if ckpt is not None:
        if ckpt.get("replay"):
            buffer.load(out / ckpt["replay"])
        step, episodes = ckpt["counters"]["global_step"], ckpt["counters"]["episodes"]
        wall_before = ckpt["counters"].get("wall_s", 0.0)
        if isinstance(buffer, DeviceReplayBuffer):  # its generator is not saved: a fresh stream
            buffer.generator.manual_seed(run.seed * 1_000_003 + step)
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
    obs = envs.reset(seed=run.seed + episodes)
    agent.normalizer.update(torch.as_tensor(obs).to(device))
    ep_return = np.zeros(n_envs)
    while step < run.total_steps:
        prev_step = step
        if step < cfg.learning_starts:
            a = rng.uniform(-1.0, 1.0, (n_envs, act_dim)).astype(np.float32)
        else:
            a = agent.act(obs)
        next_obs, reward, terminated, truncated, after = envs.step(to_env(a))
        buffer.add_batch(obs, a, reward, next_obs, terminated)
        agent.normalizer.update(torch.as_tensor(next_obs).to(device))
        ep_return += reward
        obs = after
        step += n_envs
        for i in np.flatnonzero(terminated | truncated):
            episodes += 1
            last_train_return, ep_return[i] = float(ep_return[i]), 0.0

        updated = False
        while agent.updates < updates_due(cfg, step) and buffer.size >= cfg.batch_size:
            if agent.ofenet is not None and agent.ofenet_updates == 0:  # OFENet pre-training phase
                for _ in range(ofenet_pretrain_steps(cfg)):
                    metrics = agent.update_ofenet(buffer.sample(cfg.batch_size, rng))
                    for h in hooks:
                        metrics.update(h.after_update(agent, step) or {})
            metrics = agent.update(buffer.sample(cfg.batch_size, rng))
            for h in hooks:
                metrics.update(h.after_update(agent, step) or {})
            updated = True
        if not updated:  # every step, so a schedule never misses its steps during warm-up
            for h in hooks:
                metrics.update(h.after_update(agent, step) or {})

        done_now = step >= run.total_steps
        if done_now or crossed(prev_step, step, 1000):
            now = time.monotonic()
            sps = (step - s_window) / max(now - t_window, 1e-9)
            t_window, s_window = now, step
            progress.update(step, {"sps": f"{sps:.0f}", "eval": f"{last_eval[0]:.1f}",
                                   "train": None if last_train_return is None else f"{last_train_return:.1f}"})
        if done_now or crossed(prev_step, step, run.eval_every):
            last_eval = run_eval()
            log.write(step=step, wall_s=wall_before + time.monotonic() - t0, sps=sps, train_return=last_train_return,
                      eval_return=last_eval[0], eval_std=last_eval[1],
                      params=count_params(*agent.deployed_nets().values()), **metrics)
        if done_now or crossed(prev_step, step, run.checkpoint_every):
            checkpoint()
    progress.close()
    envs.close()
    wall = wall_before + time.monotonic() - t0
    return {
        "env": run.env, "steps": step, "episodes": episodes, "wall_s": wall,
        "eval_return": last_eval[0], "eval_std": last_eval[1],
        "actor_params": count_params(agent.actor),
        "deployed_params": count_params(*agent.deployed_nets().values()),
        "actor_widths": agent.actor.spec()["hidden"],
        "checkpoint": str(out / "ckpt.pt"),
        "device": str(device),
    }

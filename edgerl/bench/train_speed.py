"""Training speed: SAC gradient updates per second of edgerl (and of Stable-Baselines3 on the same
networks, batch and env), timed interleaved in rounds so machine noise cancels, against the fp32
ceiling (the update's FLOPs at this machine's GEMM rate); PPO Impala samples per second
(``tools/bench_train.py``).

Each ``*_updates`` function returns ``run(k)``, a closure doing ``k`` updates on a replay filled
once (random transitions of the env, or of ``--env random`` sizes without gymnasium).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from edgerl.bench.peak import gemm_gflops
from edgerl.bench.shapes import FRAME, N_ACTIONS

Run = Callable[[int], None]
"""``run(k)``: ``k`` updates (waited for on a GPU)."""
WARMUP_UPDATES = 20
"""Untimed updates of every runner before the rounds."""


def fill_random(env: Any, n: int, add: Callable[..., None]) -> None:
    """``add(obs, action, reward, next_obs, terminated, info)`` for ``n`` steps of uniformly random
    actions in ``env`` (reset on episode ends)."""
    obs, _ = env.reset(seed=0)
    for _ in range(n):
        a = env.action_space.sample()
        nxt, r, term, trunc, info = env.step(a)
        add(obs, a, r, nxt, term, info)
        obs = nxt if not (term or trunc) else env.reset()[0]


def sac_updates(env_id: str, hidden: list[int], batch: int, fill: int, device: str = "cpu", obs_dim: int = 11,
                act_dim: int = 3, autocast: str | None = None,
                actor_hidden: list[int] | None = None) -> tuple[Run, int]:
    """edgerl SAC updates on a replay of ``fill`` random transitions of ``env_id`` (``"random"``:
    Gaussian transitions of ``obs_dim``/``act_dim``), and the FLOPs of one update.

    Args:
        autocast: ``"bf16"`` runs the updates under bfloat16 autocast.
    """
    from contextlib import nullcontext

    from torch.utils.flop_counter import FlopCounterMode

    from edgerl.algos.replay import make_replay
    from edgerl.algos.sac import SACAgent, SACConfig

    dev = torch.device(device)
    if env_id == "random":
        od, ad = obs_dim, act_dim
    else:
        from edgerl.envs import make_env

        env = make_env(env_id, seed=0)
        od, ad = env.observation_space.shape[0], env.action_space.shape[0]
    torch.manual_seed(0)
    agent = SACAgent(SACConfig(hidden=hidden, actor_hidden=actor_hidden, batch_size=batch), od, ad, dev)
    buf = make_replay(fill, (od,), (ad,), dev)
    if env_id == "random":
        g = np.random.default_rng(0)
        buf.add_batch(g.normal(size=(fill, od)), g.uniform(-1, 1, (fill, ad)), g.normal(size=fill),
                      g.normal(size=(fill, od)), g.random(fill) < 0.01)
    else:
        high = env.action_space.high
        fill_random(env, fill, lambda o, a, r, n, t, i: buf.add(o, a / high, r, n, t))
    rng = np.random.default_rng(0)
    ctx = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if autocast == "bf16" else nullcontext
    with FlopCounterMode(display=False) as counter:
        agent.update(buf.sample(batch, rng))
    flops = counter.get_total_flops()

    def run(k: int) -> None:
        with ctx():
            for _ in range(k):
                agent.update(buf.sample(batch, rng))
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return run, flops


def ppo_updates(width: float, device: str = "cpu") -> tuple[Run, int]:
    """edgerl PPO updates (epochs x minibatches over a random Impala rollout of 8 envs x 64 steps
    of 3x64x64 frames, 15 actions), and the samples one update trains on."""
    from edgerl.algos.ppo import PPOAgent, PPOConfig

    dev = torch.device(device)
    cfg = PPOConfig(width=width, num_envs=8, num_steps=64, num_minibatches=4, update_epochs=1)
    agent = PPOAgent(cfg, FRAME, N_ACTIONS, dev)
    n = cfg.num_envs * cfg.num_steps
    g = torch.Generator().manual_seed(0)
    batch = {"obs": torch.randint(0, 256, (n, *FRAME), generator=g, dtype=torch.uint8),
             "actions": torch.randint(0, N_ACTIONS, (n,), generator=g), "logprobs": torch.full((n,), -2.7),
             "values": torch.zeros(n), "advantages": torch.randn(n, generator=g), "returns": torch.randn(n, generator=g)}
    batch = {k: v.to(dev) for k, v in batch.items()}

    def run(k: int) -> None:
        for _ in range(k):
            agent.update(batch)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return run, n


def sb3_updates(env_id: str, hidden: list[int], batch: int, fill: int, device: str = "cpu") -> Run:
    """Stable-Baselines3 SAC gradient steps with the same networks, batch and replay size.

    Raises:
        ImportError: stable-baselines3 is not installed.
    """
    from stable_baselines3 import SAC

    from edgerl.envs import make_env

    env = make_env(env_id, seed=0)
    model = SAC("MlpPolicy", env, policy_kwargs={"net_arch": hidden}, batch_size=batch, buffer_size=fill,
                learning_starts=fill, device=device, seed=0, verbose=0)
    model.learn(total_timesteps=fill)  # fills the buffer with random actions, no updates

    def run(k: int) -> None:
        model.train(gradient_steps=k, batch_size=batch)

    return run


def sample_rates(run: Run, samples: int, rounds: int, updates: int) -> list[float]:
    """Samples per second of ``run`` (``samples`` per update) in each of ``rounds`` rounds of
    ``max(1, updates // 100)`` updates, after one untimed update."""
    run(1)
    k = max(1, updates // 100)
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        run(k)
        rates.append(samples * k / (time.perf_counter() - t))
    return rates


def update_rates(runners: dict[str, Run], rounds: int, updates: int,
                 device: str = "cpu") -> tuple[dict[str, list[float]], list[float]]:
    """Updates per second of every runner in each of ``rounds`` rounds of ``updates`` updates, the
    runners interleaved in every round, and the GEMM GFLOP/s measured at the start of each round."""
    for run in runners.values():
        run(WARMUP_UPDATES)
    rates: dict[str, list[float]] = {k: [] for k in runners}
    gemm: list[float] = []
    for _ in range(rounds):
        gemm.append(gemm_gflops(device, 0.5))
        for name, run in runners.items():
            t = time.perf_counter()
            run(updates)
            rates[name].append(updates / (time.perf_counter() - t))
    return rates, gemm


def speed_summary(rates: dict[str, list[float]], gemm: list[float], flops: int) -> dict[str, Any]:
    """Medians over rounds, the fp32 ceiling (updates/s at the median GEMM rate) and edgerl's ratio
    to it and to every other runner (``ratio_edgerl_<name>``)."""
    med = {k: statistics.median(v) for k, v in rates.items()}
    ceiling = statistics.median(gemm) * 1e9 / flops
    out: dict[str, Any] = {"updates_per_s": med, "rounds": rates, "update_gflop": flops / 1e9,
                           "gemm_gflops": statistics.median(gemm), "fp32_ceiling": ceiling,
                           "edgerl_vs_ceiling": med["edgerl"] / ceiling}
    for name in rates:
        if name != "edgerl":
            out[f"ratio_edgerl_{name}"] = med["edgerl"] / med[name]
    return out

#!/usr/bin/env python
"""SAC gradient updates per second: edgerl vs Stable-Baselines3, same networks, batch, env and
thread count, measured in one run with the two interleaved in rounds so machine noise cancels.

    .venv/bin/python tools/bench_train.py --env Hopper-v5 --threads 1 --rounds 5 --updates 200
    .venv/bin/python tools/bench_train.py --autocast bf16        # adds edgerl under bf16 autocast
    .venv/bin/python tools/bench_train.py --device cuda --env random --no-sb3   # GPU, no gymnasium
    .venv/bin/python tools/bench_train.py --algo ppo --width 3 --device cuda     # PPO Impala samples/s

Prints updates/s of each, the ratio edgerl / SB3 and, for SAC, edgerl against the fp32 ceiling:
the update's FLOPs (counted by torch's FlopCounterMode) at the GFLOP/s of a 256^3 fp32 GEMM
measured in the same run. ``--env random`` fills the replay with random transitions of
``--obs-dim``/``--act-dim`` (no gymnasium needed). ``--json`` writes it all with the versions.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

warnings.filterwarnings("ignore")


def fill_random(env, n: int, add) -> None:
    obs, _ = env.reset(seed=0)
    for _ in range(n):
        a = env.action_space.sample()
        nxt, r, term, trunc, info = env.step(a)
        add(obs, a, r, nxt, term, info)
        obs = nxt if not (term or trunc) else env.reset()[0]


def edgerl_bench(args, hidden: list[int], autocast: str | None = None, actor_hidden: list[int] | None = None):
    """A closure doing ``k`` SAC updates, and the FLOPs of one update."""
    from contextlib import nullcontext

    from torch.utils.flop_counter import FlopCounterMode

    from edgerl.algos.replay import make_replay
    from edgerl.algos.sac import SACAgent, SACConfig

    device = torch.device(args.device)
    if args.env == "random":
        od, ad = args.obs_dim, args.act_dim
    else:
        from edgerl.envs import make_env

        env = make_env(args.env, seed=0)
        od, ad = env.observation_space.shape[0], env.action_space.shape[0]
    torch.manual_seed(0)
    agent = SACAgent(SACConfig(hidden=hidden, actor_hidden=actor_hidden, batch_size=args.batch), od, ad, device)
    buf = make_replay(args.fill, (od,), (ad,), device)
    if args.env == "random":
        g = np.random.default_rng(0)
        buf.add_batch(g.normal(size=(args.fill, od)), g.uniform(-1, 1, (args.fill, ad)), g.normal(size=args.fill),
                      g.normal(size=(args.fill, od)), g.random(args.fill) < 0.01)
    else:
        high = env.action_space.high
        fill_random(env, args.fill, lambda o, a, r, n, t, i: buf.add(o, a / high, r, n, t))
    rng = np.random.default_rng(0)
    ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if autocast == "bf16" else nullcontext
    with FlopCounterMode(display=False) as counter:
        agent.update(buf.sample(args.batch, rng))
    flops = counter.get_total_flops()

    def run(k: int) -> None:
        with ctx():
            for _ in range(k):
                agent.update(buf.sample(args.batch, rng))
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run, flops


def ppo_bench(args):
    """A closure doing ``k`` PPO updates (epochs x minibatches over a random Impala rollout)."""
    from edgerl.algos.ppo import PPOAgent, PPOConfig

    device = torch.device(args.device)
    cfg = PPOConfig(width=args.width, num_envs=8, num_steps=64, num_minibatches=4, update_epochs=1)
    agent = PPOAgent(cfg, (3, 64, 64), 15, device)
    n = cfg.num_envs * cfg.num_steps
    g = torch.Generator().manual_seed(0)
    batch = {"obs": torch.randint(0, 256, (n, 3, 64, 64), generator=g, dtype=torch.uint8),
             "actions": torch.randint(0, 15, (n,), generator=g), "logprobs": torch.full((n,), -2.7),
             "values": torch.zeros(n), "advantages": torch.randn(n, generator=g), "returns": torch.randn(n, generator=g)}
    batch = {k: v.to(device) for k, v in batch.items()}

    def run(k: int) -> None:
        for _ in range(k):
            agent.update(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run, n


def gemm_gflops(device: str, seconds: float = 1.0) -> float:
    """fp32 GFLOP/s of a 256x256x256 matmul on ``device``."""
    a = torch.randn(256, 256, device=device)
    b = torch.randn(256, 256, device=device)
    for _ in range(20):
        a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(50):
            a @ b
        n += 50
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return 2 * 256**3 * n / (time.perf_counter() - t0) / 1e9


def sb3_bench(env_id: str, hidden: list[int], batch: int, fill: int, device: str = "cpu"):
    from stable_baselines3 import SAC

    from edgerl.envs import make_env

    env = make_env(env_id, seed=0)
    model = SAC("MlpPolicy", env, policy_kwargs={"net_arch": hidden}, batch_size=batch, buffer_size=fill,
                learning_starts=fill, device=device, seed=0, verbose=0)
    model.learn(total_timesteps=fill)  # fills the buffer with random actions, no updates

    def run(k: int) -> None:
        model.train(gradient_steps=k, batch_size=batch)

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", choices=("sac", "ppo"), default="sac")
    p.add_argument("--env", default="Hopper-v5", help="SAC: env whose random transitions fill the replay, or random")
    p.add_argument("--obs-dim", type=int, default=11, help="--env random: observation size (Hopper: 11)")
    p.add_argument("--act-dim", type=int, default=3, help="--env random: action size (Hopper: 3)")
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--actor-hidden", default=None, help="SAC: the actor's widths when they differ from --hidden")
    p.add_argument("--also-hidden", default=None, metavar="H",
                   help="SAC: also time edgerl with critics of widths H (same actor), interleaved: what pruning the "
                        "critics buys in training time, e.g. --hidden 512,512 --actor-hidden 102,102 --also-hidden 102,102")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--width", type=float, default=3.0, help="PPO: Impala width tau")
    p.add_argument("--device", default="cpu")
    p.add_argument("--autocast", choices=("bf16",), default=None, help="also measure edgerl under bf16 autocast")
    p.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--updates", type=int, default=200, help="updates per round and framework")
    p.add_argument("--fill", type=int, default=5000)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    hidden = [int(x) for x in args.hidden.split(",")]
    result: dict = {"algo": args.algo, "env": args.env, "hidden": hidden, "actor_hidden": args.actor_hidden,
                    "batch": args.batch, "threads": args.threads,
                    "device": args.device, "torch": str(torch.__version__), "cpu": platform.processor()}
    if args.algo == "ppo":
        run, samples = ppo_bench(args)
        run(1)
        rates = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            run(max(1, args.updates // 100))
            rates.append(samples * max(1, args.updates // 100) / (time.perf_counter() - t))
        result.update(samples_per_s=statistics.median(rates), width=args.width)
        print(f"ppo impala tau={args.width} device={args.device}: {result['samples_per_s']:.0f} samples/s "
              f"(update epochs over a 512-sample rollout; rounds: {', '.join(f'{r:.0f}' for r in rates)})")
        _write(args, result)
        return
    runners: dict = {}
    actor = [int(x) for x in args.actor_hidden.split(",")] if args.actor_hidden else None
    runners["edgerl"], flops = edgerl_bench(args, hidden, actor_hidden=actor)
    if args.autocast:
        runners["edgerl-" + args.autocast], _ = edgerl_bench(args, hidden, args.autocast, actor)
    if args.also_hidden:
        also = [int(x) for x in args.also_hidden.split(",")]
        runners[f"critics-{args.also_hidden}"], _ = edgerl_bench(args, also, actor_hidden=actor or hidden)
        result["also_hidden"] = also
    if not args.no_sb3 and args.env != "random":
        try:
            runners["sb3"] = sb3_bench(args.env, hidden, args.batch, args.fill, args.device)
        except ImportError:
            print("stable-baselines3 not installed: measuring edgerl only (pip install stable-baselines3)")
    for run in runners.values():
        run(20)  # warm-up
    rates: dict[str, list[float]] = {k: [] for k in runners}
    gemm: list[float] = []
    for _ in range(args.rounds):
        gemm.append(gemm_gflops(args.device, 0.5))
        for name, run in runners.items():
            t = time.perf_counter()
            run(args.updates)
            rates[name].append(args.updates / (time.perf_counter() - t))
    med = {k: statistics.median(v) for k, v in rates.items()}
    ceiling = statistics.median(gemm) * 1e9 / flops
    print(f"{args.env}  hidden={hidden}  batch={args.batch}  threads={args.threads}  device={args.device}  "
          f"rounds={args.rounds}x{args.updates}")
    for k, v in med.items():
        print(f"  {k:12s} {v:7.1f} updates/s  (rounds: {', '.join(f'{x:.0f}' for x in rates[k])})")
    print(f"  fp32 ceiling {ceiling:7.1f} updates/s  ({flops / 1e9:.3f} GFLOP per update at "
          f"{statistics.median(gemm):.1f} GFLOP/s of a 256^3 GEMM)")
    print(f"  edgerl / ceiling: {med['edgerl'] / ceiling:.2f}")
    result.update(updates_per_s=med, rounds=rates, update_gflop=flops / 1e9, gemm_gflops=statistics.median(gemm),
                  fp32_ceiling=ceiling, edgerl_vs_ceiling=med["edgerl"] / ceiling)
    for name in runners:
        if name != "edgerl":
            per_round = [a / b for a, b in zip(rates["edgerl"], rates[name], strict=True)]
            result[f"ratio_edgerl_{name}"] = med["edgerl"] / med[name]
            print(f"  ratio edgerl/{name}: {med['edgerl'] / med[name]:.2f}x "
                  f"(per round: {', '.join(f'{r:.2f}' for r in per_round)})")
    _write(args, result)


def _write(args, result: dict) -> None:
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

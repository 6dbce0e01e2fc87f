#!/usr/bin/env python
"""SAC gradient updates per second: edgerl vs Stable-Baselines3, same networks, batch, env and
thread count, measured in one run with the two interleaved in rounds so machine noise cancels.

    .venv/bin/python tools/bench_train.py --env Hopper-v5 --threads 1 --rounds 5 --updates 200

Prints updates/s of each and the ratio edgerl / SB3; ``--json`` writes them with the versions.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")


def fill_random(env, n: int, add) -> None:
    obs, _ = env.reset(seed=0)
    for _ in range(n):
        a = env.action_space.sample()
        nxt, r, term, trunc, info = env.step(a)
        add(obs, a, r, nxt, term, info)
        obs = nxt if not (term or trunc) else env.reset()[0]


def edgerl_bench(env_id: str, hidden: list[int], batch: int, fill: int):
    from edgerl.algos.replay import ReplayBuffer
    from edgerl.algos.sac import SACAgent, SACConfig
    from edgerl.envs import make_env

    env = make_env(env_id, seed=0)
    od, ad = env.observation_space.shape[0], env.action_space.shape[0]
    agent = SACAgent(SACConfig(hidden=hidden, batch_size=batch), od, ad)
    buf = ReplayBuffer(fill, (od,), (ad,))
    high = env.action_space.high
    fill_random(env, fill, lambda o, a, r, n, t, i: buf.add(o, a / high, r, n, t))
    rng = np.random.default_rng(0)

    def run(k: int) -> None:
        for _ in range(k):
            agent.update(buf.sample(batch, rng))

    return run


def sb3_bench(env_id: str, hidden: list[int], batch: int, fill: int):
    from stable_baselines3 import SAC

    from edgerl.envs import make_env

    env = make_env(env_id, seed=0)
    model = SAC("MlpPolicy", env, policy_kwargs={"net_arch": hidden}, batch_size=batch, buffer_size=fill,
                learning_starts=fill, device="cpu", seed=0, verbose=0)
    model.learn(total_timesteps=fill)  # fills the buffer with random actions, no updates

    def run(k: int) -> None:
        model.train(gradient_steps=k, batch_size=batch)

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--hidden", default="256,256")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--updates", type=int, default=200, help="updates per round and framework")
    p.add_argument("--fill", type=int, default=5000)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    hidden = [int(x) for x in args.hidden.split(",")]
    runners = {"edgerl": edgerl_bench(args.env, hidden, args.batch, args.fill)}
    try:
        runners["sb3"] = sb3_bench(args.env, hidden, args.batch, args.fill)
    except ImportError:
        print("stable-baselines3 not installed: measuring edgerl only (pip install stable-baselines3)")
    for run in runners.values():
        run(20)  # warm-up
    rates: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            t = time.perf_counter()
            run(args.updates)
            rates[name].append(args.updates / (time.perf_counter() - t))
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{args.env}  hidden={hidden}  batch={args.batch}  threads={args.threads}  "
          f"rounds={args.rounds}x{args.updates}")
    for k, v in med.items():
        print(f"  {k:7s} {v:7.1f} updates/s  (rounds: {', '.join(f'{x:.0f}' for x in rates[k])})")
    result = {"env": args.env, "hidden": hidden, "batch": args.batch, "threads": args.threads,
              "updates_per_s": med, "rounds": rates, "torch": str(torch.__version__), "cpu": platform.processor()}
    if "sb3" in med:
        result["ratio"] = med["edgerl"] / med["sb3"]
        per_round = [a / b for a, b in zip(rates["edgerl"], rates["sb3"], strict=True)]
        print(f"  ratio edgerl/sb3: {result['ratio']:.2f}x (per round: {', '.join(f'{r:.2f}' for r in per_round)})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()

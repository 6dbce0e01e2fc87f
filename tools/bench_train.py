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
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

warnings.filterwarnings("ignore")


def main() -> None:
    from edgerl.bench.train_speed import (
        ppo_updates,
        sac_updates,
        sample_rates,
        sb3_updates,
        speed_summary,
        update_rates,
    )

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
        run, samples = ppo_updates(args.width, args.device)
        rates = sample_rates(run, samples, args.rounds, args.updates)
        result.update(samples_per_s=statistics.median(rates), width=args.width)
        print(f"ppo impala tau={args.width} device={args.device}: {result['samples_per_s']:.0f} samples/s "
              f"(update epochs over a 512-sample rollout; rounds: {', '.join(f'{r:.0f}' for r in rates)})")
        _write(args, result)
        return
    runners: dict = {}
    actor = [int(x) for x in args.actor_hidden.split(",")] if args.actor_hidden else None
    sac = {"batch": args.batch, "fill": args.fill, "device": args.device, "obs_dim": args.obs_dim,
           "act_dim": args.act_dim}
    runners["edgerl"], flops = sac_updates(args.env, hidden, actor_hidden=actor, **sac)
    if args.autocast:
        runners["edgerl-" + args.autocast], _ = sac_updates(args.env, hidden, autocast=args.autocast,
                                                            actor_hidden=actor, **sac)
    if args.also_hidden:
        also = [int(x) for x in args.also_hidden.split(",")]
        runners[f"critics-{args.also_hidden}"], _ = sac_updates(args.env, also, actor_hidden=actor or hidden, **sac)
        result["also_hidden"] = also
    if not args.no_sb3 and args.env != "random":
        try:
            runners["sb3"] = sb3_updates(args.env, hidden, args.batch, args.fill, args.device)
        except ImportError:
            print("stable-baselines3 not installed: measuring edgerl only (pip install stable-baselines3)")
    rates, gemm = update_rates(runners, args.rounds, args.updates, args.device)
    result.update(speed_summary(rates, gemm, flops))
    med, ceiling = result["updates_per_s"], result["fp32_ceiling"]
    print(f"{args.env}  hidden={hidden}  batch={args.batch}  threads={args.threads}  device={args.device}  "
          f"rounds={args.rounds}x{args.updates}")
    for k, v in med.items():
        print(f"  {k:12s} {v:7.1f} updates/s  (rounds: {', '.join(f'{x:.0f}' for x in rates[k])})")
    print(f"  fp32 ceiling {ceiling:7.1f} updates/s  ({flops / 1e9:.3f} GFLOP per update at "
          f"{result['gemm_gflops']:.1f} GFLOP/s of a 256^3 GEMM)")
    print(f"  edgerl / ceiling: {result['edgerl_vs_ceiling']:.2f}")
    for name in runners:
        if name != "edgerl":
            per_round = [a / b for a, b in zip(rates["edgerl"], rates[name], strict=True)]
            print(f"  ratio edgerl/{name}: {result[f'ratio_edgerl_{name}']:.2f}x "
                  f"(per round: {', '.join(f'{r:.2f}' for r in per_round)})")
    _write(args, result)


def _write(args, result: dict) -> None:
    if args.json:
        from edgerl.runtime.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""``edgerl run``: drive an environment through the on-robot runtime, as the robot would run it,
and compare with the torch policy of the source checkpoint on the same seeds."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", help="a bundle folder written by edgerl deploy")
    p.add_argument("--env", default=None, help="env id (default: the contract's source env)")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    p.add_argument("--backends", default=None, help="comma-separated backend order (default: the bundle's profile)")
    p.add_argument("--checkpoint", default=None,
                   help="torch checkpoint to compare with (default: the contract's source checkpoint, if present)")
    p.add_argument("--no-compare", action="store_true", help="skip the torch comparison (no torch needed)")
    p.add_argument("--max-steps", type=int, default=None, help="cap each episode at N steps")
    p.add_argument("--json", default=None, metavar="FILE")


def rollout(act, env: str | Callable[[], Any], episodes: int, seed: int, max_steps: int | None,
            reset=None) -> list[float]:
    """Episode returns of ``act(obs) -> env action`` with env seeds ``seed + i`` (``reset()`` at
    every episode start: a recurrent policy's state) on ``env``: an env id, or a function making it."""
    from edgerl.envs import episode_returns_of, make_env

    made = make_env(env) if isinstance(env, str) else env()
    return [float(r) for r in episode_returns_of(made, act, episodes, seed, max_steps, reset)]


def env_maker(env: str | None, env_id: str, ckpt: dict[str, Any] | None, contract: Any) -> Callable[[], Any]:
    """What ``edgerl run`` rolls: ``env_id`` as the policy saw it. The training checkpoint's own env
    through its export adapter, else the env with the frame preprocessing the checkpoint or the
    contract records (image policies), else the plain env; each must observe what the contract takes."""
    from edgerl.envs import make_env
    from edgerl.errors import ConfigError

    recorded = ((ckpt or {}).get("env") or {}).get("preprocessing") or contract.raw["observation"].get("preprocessing")
    own = ckpt is not None and (env is None or env == ckpt["env"]["id"])

    def make() -> Any:
        if own:
            from edgerl.export.registry import export_adapter

            made = export_adapter(ckpt["algo"]).make_env(ckpt, None)  # type: ignore[index]
        elif recorded:
            from edgerl.algos.atari import make_recorded_env

            made = make_recorded_env(env_id, recorded)
        else:
            made = make_env(env_id)
        shape = tuple(made.observation_space.shape or ())
        if shape != tuple(contract.obs_shape):
            made.close()
            trained_on = contract.raw.get("source", {}).get("env_id")
            if contract.obs_dtype != np.uint8:
                todo = f"pass the env it was trained on (--env {trained_on})"
            elif ckpt is None:
                todo = "pass --checkpoint (the policy's checkpoint) so edgerl run applies the preprocessing it trained with"
            else:
                todo = ("neither the checkpoint nor the contract records the preprocessing that makes its frames; "
                        "roll the bundle in your own env wrappers (edgerl_runtime.Policy)")
            raise ConfigError(f"{env_id} observes {list(shape)} but the bundle takes {list(contract.obs_shape)}; {todo}")
        return made

    return make


def run_bundle(bundle: str | Path, env: str | None = None, episodes: int = 5, seed: int = 0,
               backends: list[str] | None = None, checkpoint: str | None = None, compare: bool = True,
               max_steps: int | None = None) -> dict[str, Any]:
    """Returns and latency of the runtime policy, and the torch policy's returns on the same seeds."""
    from edgerl.runtime import Policy

    policy = Policy.load(bundle, backends=backends)
    env_id = env or policy.contract.raw.get("source", {}).get("env_id")
    if not env_id:
        from edgerl.errors import ConfigError

        raise ConfigError(f"{bundle}: the contract names no env; pass --env")
    result: dict[str, Any] = {"bundle": str(bundle), "env": env_id, "backend": policy.backend_name,
                              "precision": policy.backend.precision, "contract_precision": policy.contract.precision,
                              "skipped_backends": policy.skipped_backends, "seeds": [seed + i for i in range(episodes)]}
    source = policy.contract.raw.get("source", {})
    foreign = source.get("kind") == "import:onnx"  # the source is someone's ONNX graph: no torch policy
    ckpt_path = checkpoint or (None if foreign else source.get("checkpoint"))
    ckpt = None
    # An image policy's env needs its frame preprocessing: from the contract, else from the checkpoint.
    unknown_frames = policy.contract.obs_dtype == np.uint8 and not policy.contract.raw["observation"].get("preprocessing")
    if ckpt_path and Path(ckpt_path).exists() and (compare or unknown_frames):
        from edgerl.checkpoint import load_checkpoint

        ckpt = load_checkpoint(ckpt_path)
    make = env_maker(env, env_id, ckpt, policy.contract)
    policy.reset()  # Policy.load warmed up on the reference observations
    policy.reset_stats()
    result["runtime_returns"] = rollout(policy.act, make, episodes, seed, max_steps, policy.reset)
    result["latency"] = policy.stats()
    if compare and ckpt is not None:
        import torch

        from edgerl.export.policy import policy_from_checkpoint

        torch_policy = policy_from_checkpoint(ckpt)
        dtype = torch.uint8 if policy.contract.obs_dtype == np.uint8 else torch.float32
        state = [torch_policy.initial_state(1)]  # a recurrent policy's memory, zeroed at episode start

        @torch.inference_mode()
        def torch_act(obs):
            action, state[0] = torch_policy.step(torch.as_tensor(np.asarray(obs)[None], dtype=dtype), state[0])
            a = action[0].numpy()
            return int(a) if policy.contract.discrete else a

        def torch_reset() -> None:
            state[0] = torch_policy.initial_state(1)

        result["torch_checkpoint"] = str(ckpt_path)
        result["torch_returns"] = rollout(torch_act, make, episodes, seed, max_steps, torch_reset)
    elif compare and foreign and not checkpoint:
        result["torch_note"] = "no torch comparison: the bundle wraps an imported ONNX graph"
    elif compare:
        result["torch_note"] = f"no torch comparison: checkpoint {ckpt_path!r} not found (pass --checkpoint)"
    policy.close()
    return result


def run(args: argparse.Namespace) -> int:
    from edgerl.errors import ConfigError

    for flag, value, low in (("--episodes", args.episodes, 1), ("--max-steps", args.max_steps, 1), ("--seed", args.seed, 0)):
        if value is not None and value < low:
            raise ConfigError(f"{flag} must be >= {low}, got {value}")
    backends = args.backends.split(",") if args.backends else None
    res = run_bundle(args.bundle, args.env, args.episodes, args.seed, backends, args.checkpoint,
                     not args.no_compare, args.max_steps)
    lat = res["latency"]
    rt = np.asarray(res["runtime_returns"])
    print(f"ran {res['bundle']} on {res['env']} with backend {res['backend']} ({res['precision']}; contract "
          f"{res['contract_precision']}) ({args.episodes} episodes, seeds {res['seeds'][0]}..)")
    for name, why in res["skipped_backends"].items():
        print(f"  skipped {name}: {why}")
    print(f"  runtime return  {rt.mean():9.2f} ± {rt.std():.2f}   per episode: {', '.join(f'{r:.1f}' for r in rt)}")
    if "torch_returns" in res:
        tr = np.asarray(res["torch_returns"])
        print(f"  torch return    {tr.mean():9.2f} ± {tr.std():.2f}   per episode: {', '.join(f'{r:.1f}' for r in tr)}")
        print(f"  max |runtime - torch| per episode: {np.abs(rt - tr).max():.3g}")
    elif "torch_note" in res:
        print(f"  {res['torch_note']}")
    budget = f", {lat['misses']} over the {lat['budget_us']:.0f} us budget" if lat.get("budget_us") else ""
    print(f"  act() latency   p50 {lat['p50_us']:.1f} us, p90 {lat['p90_us']:.1f}, p99 {lat['p99_us']:.1f}, "
          f"max {lat['max_us']:.1f} over {lat['count']} calls{budget}")
    if args.json:
        from edgerl.runtime.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(res, indent=2, default=float))
    return 0

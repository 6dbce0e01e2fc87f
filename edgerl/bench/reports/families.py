"""The synthetic policies timed by the latency report: freshly initialised SAC actors and Impala-CNN
PPO networks, pruned by groups to a channel ratio and saved as policy checkpoints.

Weights are random: latency depends on shapes only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgerl.bench.shapes import ACT_DIM, FRAME, IMPALA_HIDDEN, N_ACTIONS, OBS_DIM


@dataclass(frozen=True)
class Family:
    """Networks of one architecture, timed together against their dense member."""

    key: str
    """Short name used in labels and ``--families``."""
    title: str
    """Human-readable description."""
    kind: str
    """``mlp`` (SAC actor) or ``impala`` (PPO ActorCriticCNN)."""
    size: tuple[int, ...]
    """Hidden widths of the MLP, or ``(tau,)`` for Impala."""


def impala_family(tau: int) -> Family:
    """The Impala-CNN family of width multiplier ``tau`` on :data:`FRAME` frames."""
    return Family(f"impala{tau}", f"Impala-CNN tau={tau}, {'x'.join(map(str, FRAME))}, {N_ACTIONS} actions",
                  "impala", (tau,))


FAMILIES = {
    "sac256": Family("sac256", "SAC actor 17-256-256-6", "mlp", (256, 256)),
    "sac1024": Family("sac1024", "SAC actor 17-1024-1024-6", "mlp", (1024, 1024)),
    "impala1": impala_family(1),
    "impala3": impala_family(3),
}


@dataclass(frozen=True)
class Variant:
    """One model of a family: a channel ratio and an optional width rounding."""

    family: Family
    ratio: float = 0.0
    round_to: int | None = None

    @property
    def label(self) -> str:
        """Unique name, also the checkpoint's file stem."""
        tag = "dense" if self.ratio == 0 else f"{self.ratio:g}"
        return f"{self.family.key}-{tag}" + (f"-rt{self.round_to}" if self.round_to else "")


def variants(family: Family, ratios: Sequence[float], round_to: int) -> list[Variant]:
    """The dense model, then one variant per ratio (and per ratio with ``round_to`` for conv nets)."""
    out = [Variant(family)]
    for r in ratios:
        out.append(Variant(family, r))
        if round_to > 1 and family.kind == "impala":
            out.append(Variant(family, r, round_to))
    return out


def _space_info(env_id: str, obs: Any, act: Any) -> dict[str, Any]:
    from edgerl.envs import describe_space

    return {"id": env_id, "observation_space": describe_space(obs), "action_space": describe_space(act)}


def build_variant(v: Variant, seed: int = 0) -> tuple[str, dict[str, Any], Any, Any]:
    """A freshly initialised network of ``v``, pruned by groups to its ratio.

    Returns:
        ``(algo, env_info, network, example_input)`` for a policy checkpoint.
    """
    import numpy as np
    import torch
    from gymnasium import spaces

    from edgerl.prune.gradual import prune_once

    torch.manual_seed(seed)
    if v.family.kind == "mlp":
        from edgerl.nets.mlp import SquashedGaussianActor

        net = SquashedGaussianActor(OBS_DIM, ACT_DIM, list(v.family.size))
        example: Any = net.example_inputs()
        env = _space_info(f"synthetic-obs{OBS_DIM}-act{ACT_DIM}",
                          spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float64), spaces.Box(-1.0, 1.0, (ACT_DIM,)))
        algo = "sac"
    else:
        from edgerl.nets.impala import ActorCriticCNN, image_encoder_spec

        net = ActorCriticCNN(image_encoder_spec("impala", FRAME, v.family.size[0], IMPALA_HIDDEN), N_ACTIONS)
        example = (torch.zeros(2, *FRAME, dtype=torch.uint8),)
        env = _space_info(f"synthetic-{'x'.join(map(str, FRAME))}-uint8-discrete{N_ACTIONS}",
                          spaces.Box(0, 255, FRAME, np.uint8), spaces.Discrete(N_ACTIONS))
        algo = "ppo"
    if v.ratio > 0:
        prune_once(net, example, v.ratio, round_to=v.round_to)
    return algo, env, net.eval(), example


def net_widths(net: Any) -> list[Any]:
    """Hidden widths (MLP) or per-stage stream channels + hidden (Impala) of a built network."""
    spec = net.spec()
    if "hidden" in spec and "encoder" not in spec:
        return list(spec["hidden"])
    enc = spec["encoder"]["kwargs"]
    return [[s[0] for s in enc["channels"]], [s[1:] for s in enc["channels"]], enc["hidden"]]


def write_policy(v: Variant, path: Path, seed: int = 0) -> dict[str, Any]:
    """Save ``v`` as a ``kind: "policy"`` checkpoint; returns its description for the report."""
    from edgerl.checkpoint import save_checkpoint
    from edgerl.export.policy import policy_checkpoint_payload

    algo, env, net, _ = build_variant(v, seed)
    config = {"run": {"env": env["id"], "algo": algo},
              "algo": {"hidden": list(v.family.size)} if v.family.kind == "mlp" else {"width": v.family.size[0]},
              "prune": {"prune": "gradual" if v.ratio else "none", "final_ratio": v.ratio, "importance": "l1",
                        "round_to": v.round_to or 1}}
    name = "actor" if algo == "sac" else "net"
    save_checkpoint(path, policy_checkpoint_payload(algo, env, config, {name: net},
                                                    counters={"global_step": 0},
                                                    source={"checkpoint": None, "kind": "synthetic"}))
    return {"label": v.label, "family": v.family.key, "ratio": v.ratio, "round_to": v.round_to,
            "widths": net_widths(net), "path": path.name}

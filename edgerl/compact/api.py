"""``compact_checkpoint``: from any edgerl checkpoint (dense, gradually pruned, masked, gated) to
the smallest policy checkpoint that computes the same deployed function.

Steps: keep only the networks the deployed policy runs (critics, targets, optimizers, replay
and training-only blocks are dropped); let each net fold what only training needs (gates,
BatchNorm) through its optional ``fold_for_deploy()``; remove dead units through the prune
graph; then check the compacted policy against the original on random and recorded observations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from edgerl.bench.macs import count_macs, count_params
from edgerl.compact.units import remove_dead_units
from edgerl.errors import EdgerlError
from edgerl.export.observations import (
    input_dtype,
    obs_space,
    random_observations,
    recorded_observations,
    torch_actions,
)
from edgerl.export.policy import POLICY_KIND, policy_checkpoint_payload, policy_from_checkpoint
from edgerl.export.registry import export_adapter
from edgerl.export.wrappers import DeployedPolicy
from edgerl.prune import layer_widths

TOLERANCE = 1e-5


class CompactCheckError(EdgerlError):
    """The compacted policy does not compute the same actions as the original."""


@dataclass
class CompactReport:
    """What compaction did, and the evidence that it changed nothing the robot would see."""

    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    widths_before: dict[str, dict[str, int]]
    widths_after: dict[str, dict[str, int]]
    removed_units: dict[str, dict[str, int]]
    dropped: list[str]
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    training_params: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _nets_by_name(policy: DeployedPolicy, names: tuple[str, ...]) -> dict[str, nn.Module]:
    """The checkpoint-named networks inside a deployed policy (``policy.nets()`` where a policy
    runs several, else its single ``net``)."""
    if hasattr(policy, "nets"):
        return dict(policy.nets())
    if len(names) != 1:
        raise EdgerlError(f"{type(policy).__name__} runs nets {names} but does not say which module is which")
    return {names[0]: policy.net}


def _example(policy: DeployedPolicy, ckpt: dict[str, Any]) -> torch.Tensor:
    space = obs_space(ckpt)
    return torch.zeros(1, *space["shape"], dtype=torch.uint8 if input_dtype(space) == np.uint8 else torch.float32)


def _max_diff(a: DeployedPolicy, b: DeployedPolicy, obs: np.ndarray, dtype: np.dtype) -> float:
    x, y = torch_actions(a, obs, dtype), torch_actions(b, obs, dtype)
    if a.discrete:
        return float((x != y).mean())  # fraction of differing actions
    return float(np.abs(x.astype(np.float64) - y.astype(np.float64)).max())


def compact_checkpoint(ckpt: dict[str, Any], recorded_steps: int = 256, random_obs: int = 1024,
                       seed: int = 0, source: dict[str, Any] | None = None) -> tuple[dict[str, Any], CompactReport]:
    """Compact a loaded checkpoint; returns the policy-checkpoint payload and the report.

    Raises:
        CompactCheckError: the compacted policy's actions differ by more than 1e-5.
    """
    adapter = export_adapter(ckpt["algo"])
    original = policy_from_checkpoint(ckpt)
    work = policy_from_checkpoint(ckpt)  # rebuilt copy that is compacted in place
    example = _example(original, ckpt)
    nets = _nets_by_name(work, adapter.nets)
    widths_before = {n: layer_widths(m) for n, m in nets.items()}
    params_before = count_params(original)
    macs_before = count_macs(original, example)

    removed: dict[str, dict[str, int]] = {}
    for name, net in nets.items():
        fold = getattr(net, "fold_for_deploy", None)
        if fold is not None:
            fold()
        if hasattr(net, "heads") and hasattr(net, "example_inputs"):
            act = net.unit_activation() if hasattr(net, "unit_activation") else None
            removed[name] = remove_dead_units(net, net.example_inputs(2), net.heads(), act)
        net.eval()

    payload = policy_checkpoint_payload(
        ckpt["algo"], ckpt["env"], ckpt["config"],
        {**{n: m for n, m in nets.items()}, **({"normalizer": work.normalizer} if work.normalizer is not None else {})},
        counters=ckpt.get("counters"), source=source)
    compacted = policy_from_checkpoint(payload)
    training_params = None
    if ckpt["kind"] != POLICY_KIND:
        training_params = sum(v.numel() for e in ckpt["agent"]["nets"].values() for v in e["state"].values()
                              if isinstance(v, torch.Tensor) and v.is_floating_point())
    kept = set(nets)
    report = CompactReport(
        params_before=params_before, params_after=count_params(compacted),
        macs_before=macs_before, macs_after=count_macs(compacted, example),
        widths_before=widths_before,
        widths_after={n: layer_widths(m) for n, m in _nets_by_name(compacted, adapter.nets).items()},
        removed_units=removed,
        dropped=sorted(set(ckpt["agent"].get("nets", {})) - kept) + (
            ["optimizers"] if "optim" in ckpt["agent"] else []) + (["replay buffer"] if ckpt.get("replay") else []),
        training_params=training_params,
    )
    space = obs_space(ckpt)
    dtype = input_dtype(space)
    rng = np.random.default_rng(seed)
    checks = {"random": random_observations(space, random_obs, rng, *_stats(original))}
    if recorded_steps > 0:
        checks["recorded"] = recorded_observations(original, ckpt, recorded_steps, seed=seed)
    for kind, obs in checks.items():
        report.max_abs_diff[kind] = _max_diff(original, compacted, obs, dtype)
    worst = max(report.max_abs_diff.values())
    if not worst <= TOLERANCE:  # NaN fails too
        if not np.isfinite(worst):
            raise CompactCheckError(
                "the policy's actions are not finite (NaN or inf) before or after compaction; the checkpoint's "
                "weights or normaliser statistics are not finite: use an earlier checkpoint")
        raise CompactCheckError(
            f"compacted policy differs from the original by {worst:.3g} (> {TOLERANCE}) on "
            f"{max(report.max_abs_diff, key=report.max_abs_diff.get)} observations; this is a bug in "
            "edgerl compact: please report it with the checkpoint")
    payload["compact"] = report.to_dict()
    return payload, report


def _stats(policy: DeployedPolicy) -> tuple[Any, Any]:
    from edgerl.export.observations import policy_obs_stats

    return policy_obs_stats(policy)

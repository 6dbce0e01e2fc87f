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


class OpenGatesError(EdgerlError):
    """A gates checkpoint taken inside the pruning window: its deployed function is not decided yet."""


DEPLOYED_GATES = ("actor.", "ofenet.state_block.")
"""Gate keys (agent-relative) of the networks a SAC policy deploys."""


def pending_gates(ckpt: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """Gate probabilities of a ``--prune gates`` train checkpoint taken inside the pruning window,
    where a deployed unit has ``0 < theta < 1`` (None when the deployed function is decided: no
    gates, the window is over and every gate was rounded, or every deployed gate is fully open).

    Inside the window a unit at theta = 0.02 was present in 2% of the training samples; compacting
    as is would deploy it fully open (``xi = 1``), a different function from the one trained."""
    from edgerl.prune.gates import checkpoint_gates

    state = (ckpt.get("hooks") or {}).get("gates") if ckpt.get("kind") != POLICY_KIND else None
    if not isinstance(state, dict) or state.get("finished"):
        return None
    try:
        theta = checkpoint_gates(ckpt)
    except (KeyError, TypeError) as e:
        raise EdgerlError(f"the checkpoint's gate state is unreadable ({type(e).__name__}: {e}); the file is damaged") from None
    deployed = {k: t for k, t in (theta or {}).items() if k.startswith(DEPLOYED_GATES)}
    if not deployed or all(bool((t >= 1).all()) for t in deployed.values()):
        return None
    return theta


def round_gates_payload(ckpt: dict[str, Any], theta: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, int]]:
    """A policy checkpoint of ``ckpt``'s deployed function with every gate rounded as the end of
    the pruning window rounds it (theta <= 0.5 removed, the rest open); returns it and the units
    removed per gated layer."""
    from edgerl.prune.gate_hook import ROUND_AT_END
    from edgerl.prune.gates import fold_gates

    policy = policy_from_checkpoint(ckpt)
    deployed = {**policy.nets(), **({"normalizer": policy.normalizer} if policy.normalizer is not None else {})}
    folded = fold_gates(deployed, theta, threshold=ROUND_AT_END)
    widths = {n: layer_widths(m) for n, m in policy.nets().items()}
    removed = {f"{n}/{k}": w - layer_widths(folded[n]).get(k, w) for n, ws in widths.items() for k, w in ws.items()}
    payload = policy_checkpoint_payload(ckpt["algo"], ckpt["env"], ckpt["config"], folded,
                                        counters=ckpt.get("counters"), source=None)
    return payload, {k: v for k, v in removed.items() if v}


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
    gate_rounding: dict[str, Any] | None = None
    """``--round-gates``: units removed by rounding and the max |action change| it caused."""

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
                       seed: int = 0, source: dict[str, Any] | None = None,
                       round_gates: bool = False) -> tuple[dict[str, Any], CompactReport]:
    """Compact a loaded checkpoint; returns the policy-checkpoint payload and the report.

    Args:
        round_gates: a gates checkpoint taken inside the pruning window (:func:`pending_gates`) is
            refused unless this is set; then its gates are rounded at 0.5 first (the deployed
            function changes, by the amount the report's ``gate_rounding`` gives).

    Raises:
        CompactCheckError: the compacted policy's actions differ by more than 1e-5 (or are not finite).
        OpenGatesError: a checkpoint inside the gates' pruning window without ``round_gates``.
    """
    src_ckpt, rounding = ckpt, None
    theta = pending_gates(ckpt)
    if theta is not None:
        if not round_gates:
            step = (ckpt.get("counters") or {}).get("global_step")
            raise OpenGatesError(
                f"this --prune gates checkpoint (step {step}) is inside the pruning window: some deployed units "
                "are open in only part of the training samples and would be deployed fully open; compact the "
                "checkpoint of a finished run, or pass --round-gates to round them (theta <= 0.5 removed) and "
                "report the change")
        rounded, removed_by_rounding = round_gates_payload(ckpt, theta)
        as_open = policy_from_checkpoint(ckpt)
        space = obs_space(ckpt)
        obs = random_observations(space, random_obs, np.random.default_rng(seed + 1), *_stats(as_open))
        change = _max_diff(as_open, policy_from_checkpoint(rounded), obs, input_dtype(space))
        rounding = {"units_removed": removed_by_rounding, "max_abs_diff_vs_open": change}
        ckpt = rounded  # the policy checkpoint of the rounded function: what is compacted and checked
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
    if src_ckpt["kind"] != POLICY_KIND:
        training_params = sum(v.numel() for e in src_ckpt["agent"]["nets"].values() for v in e["state"].values()
                              if isinstance(v, torch.Tensor) and v.is_floating_point())
    kept = set(nets)
    report = CompactReport(
        params_before=params_before, params_after=count_params(compacted),
        macs_before=macs_before, macs_after=count_macs(compacted, example),
        widths_before=widths_before,
        widths_after={n: layer_widths(m) for n, m in _nets_by_name(compacted, adapter.nets).items()},
        removed_units=removed,
        dropped=sorted(set(src_ckpt["agent"].get("nets", {})) - kept) + (
            ["optimizers"] if "optim" in src_ckpt["agent"] else []) + (["replay buffer"] if src_ckpt.get("replay") else []),
        training_params=training_params, gate_rounding=rounding,
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

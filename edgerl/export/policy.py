"""The deployable policy of a checkpoint, and the policy-checkpoint layout ``edgerl compact`` writes.

A ``kind: "train"`` checkpoint (``edgerl train``) holds the whole agent; a ``kind: "policy"``
checkpoint holds only what the deployed policy runs. Both use the checkpoint format of
:mod:`edgerl.checkpoint` (one ``torch.save`` dict of tensors and plain data); the policy layout::

    format, format_version, versions, content_sha256   (added by save_checkpoint)
    kind        "policy"
    algo        "sac" | ...               (picks the export adapter, edgerl.export.registry)
    env         {id, observation_space, action_space}          (copied from the source)
    config      {run, algo, prune}                              (copied from the source)
    agent
      nets        {name: {spec, state}}   only the deployed networks, under their train-checkpoint
                                          names (SAC: "actor" [+ "ofenet_state"]; PPO: "net";
                                          DQN: "q_network"), each rebuilt by
                                          edgerl.nets.build_net(spec) at its saved (possibly
                                          pruned and compacted) widths
      normalizer  {spec: {shape, clip, eps, enabled}, state: {mean, var, count}} | None
    counters    {global_step, updates, episodes, ...}           (copied from the source)
    source      {checkpoint, sha256, kind} | None               (provenance)
    ...         any extra entries the writer adds (e.g. compact's width report)

Write one with ``save_checkpoint(path, policy_checkpoint_payload(...))`` and read it back with
``policy_from_checkpoint(load_checkpoint(path))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from edgerl.errors import CheckpointError
from edgerl.export.registry import export_adapter
from edgerl.export.wrappers import DeployedPolicy
from edgerl.nets import build_net, net_spec
from edgerl.nets.mlp import ObsNormalizer

POLICY_KIND = "policy"
TRAIN_KIND = "train"


def _clone_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def normalizer_entry(normalizer: ObsNormalizer | None) -> dict[str, Any] | None:
    """The ``agent.normalizer`` entry of a policy checkpoint (None when there is none)."""
    if normalizer is None:
        return None
    spec = {"shape": list(normalizer.shape), "clip": normalizer.clip, "eps": normalizer.eps,
            "enabled": normalizer.enabled}
    return {"spec": spec, "state": _clone_state(normalizer)}


def policy_checkpoint_payload(algo: str, env: dict[str, Any], config: dict[str, Any],
                              deployed: Mapping[str, nn.Module], counters: dict[str, Any] | None = None,
                              source: dict[str, Any] | None = None,
                              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The payload of a ``kind: "policy"`` checkpoint, for :func:`edgerl.checkpoint.save_checkpoint`.

    Args:
        algo: Algorithm name (``"sac"``); must have an export adapter.
        env: The source checkpoint's ``env`` entry (id and space descriptions).
        config: The source checkpoint's resolved ``config``.
        deployed: ``agent.deployed_nets()`` (or ``DeployedPolicy.nets()`` plus the normaliser):
            the normaliser (an :class:`ObsNormalizer`, any key) and the registered networks the
            policy runs, possibly compacted. Keys are mapped to checkpoint names by the
            algorithm's adapter (PPO's ``policy`` is stored as ``net``).
        counters: The source's ``counters`` (``global_step`` is reported as the baked-in steps).
        source: Provenance, e.g. ``{"checkpoint": path, "sha256": ..., "kind": "train"}``.
        extra: More top-level entries (must not replace the ones above).

    Raises:
        CheckpointError: A network is not rebuildable from a spec, or a needed network is missing.
    """
    adapter = export_adapter(algo)
    normalizers = [m for m in deployed.values() if isinstance(m, ObsNormalizer)]
    if len(normalizers) > 1:
        raise CheckpointError(f"deployed nets hold {len(normalizers)} observation normalisers; expected at most one")
    nets: dict[str, dict[str, Any]] = {}
    for name, module in deployed.items():
        if isinstance(module, ObsNormalizer):
            continue
        if not hasattr(module, "net_type"):
            raise CheckpointError(f"deployed net {name!r} ({type(module).__name__}) is not registered with "
                                  "edgerl.nets.register_net, so it cannot be rebuilt from a checkpoint")
        nets[adapter.net_name(name)] = {"spec": net_spec(module), "state": _clone_state(module)}
    missing = [n for n in adapter.nets if n not in nets]
    if missing:
        raise CheckpointError(f"a {algo} policy needs nets {list(adapter.nets)}; deployed nets lack {missing}")
    payload = {
        "kind": POLICY_KIND, "algo": algo, "env": env, "config": config,
        "agent": {"nets": nets, "normalizer": normalizer_entry(normalizers[0] if normalizers else None)},
        "counters": dict(counters or {}), "source": source,
    }
    clash = sorted(set(extra or {}) & set(payload))
    if clash:
        raise CheckpointError(f"extra policy-checkpoint entries {clash} would replace required ones")
    return {**payload, **(extra or {})}


def _rebuild(name: str, entry: Any) -> nn.Module:
    if not isinstance(entry, dict) or "spec" not in entry or "state" not in entry:
        raise CheckpointError(f"checkpoint net {name!r} lacks its spec or state; the file is damaged")
    net = build_net(entry["spec"], entry["state"], name=f"checkpoint net {name!r}")
    bad = next((k for k, v in net.state_dict().items() if v.is_floating_point() and not bool(v.isfinite().all())), None)
    if bad is not None:
        raise CheckpointError(f"checkpoint net {name!r} holds non-finite values in {bad} (NaN or inf): the run "
                              "diverged or the file is damaged; use an earlier checkpoint")
    return net


def _normalizer(ckpt: dict[str, Any], enabled_in_train: bool) -> ObsNormalizer | None:
    entry = ckpt["agent"].get("normalizer")
    if entry is None:
        return None
    if ckpt["kind"] == POLICY_KIND:
        spec, state = entry.get("spec"), entry.get("state")
        mean = state.get("mean") if isinstance(state, dict) else None
        if not isinstance(spec, dict) or not isinstance(mean, torch.Tensor) or spec.get("shape") != list(mean.shape):
            raise CheckpointError("policy checkpoint normalizer spec shape does not match its stored mean "
                                  f"({str(spec.get('shape') if isinstance(spec, dict) else spec)[:60]}); the file is damaged")
        try:
            norm = ObsNormalizer(spec["shape"], clip=spec["clip"], eps=spec["eps"], enabled=spec["enabled"])
        except (KeyError, TypeError, ValueError, RuntimeError):
            raise CheckpointError("policy checkpoint normalizer lacks its spec (shape, clip, eps, enabled); "
                                  "the file is damaged") from None
    else:
        if not enabled_in_train:
            return None
        state = entry
        if not isinstance(state, dict) or not isinstance(state.get("mean"), torch.Tensor):
            raise CheckpointError("train checkpoint normalizer lacks its running mean; the file is damaged")
        norm = ObsNormalizer(tuple(state["mean"].shape), enabled=True)
    try:
        norm.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, AttributeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"checkpoint observation normaliser is unreadable ({first[:200]}); "
                              "the file is damaged") from None
    if not all(bool(v.isfinite().all()) for v in norm.state_dict().values() if v.is_floating_point()):
        raise CheckpointError("checkpoint observation normaliser holds non-finite statistics (NaN or inf): the run "
                              "diverged or the file is damaged; use an earlier checkpoint")
    return norm if norm.enabled else None


def policy_from_checkpoint(ckpt: dict[str, Any]) -> DeployedPolicy:
    """The deployed policy of a loaded ``train`` or ``policy`` checkpoint, in eval mode.

    Only networks and the normaliser are rebuilt (from their specs and states); no agent,
    optimizer or environment is created.

    Raises:
        CheckpointError: Unknown kind or algorithm, or missing/mismatched networks.
    """
    kind = ckpt.get("kind")
    if kind not in (TRAIN_KIND, POLICY_KIND):
        raise CheckpointError(f"cannot export a {kind!r} checkpoint; export a train or policy checkpoint")
    adapter = export_adapter(ckpt["algo"])
    stored = ckpt["agent"].get("nets", {})
    missing = [n for n in adapter.nets if n not in stored]
    if missing:
        raise CheckpointError(f"{ckpt['algo']} {kind} checkpoint lacks nets {missing} "
                              f"(has {sorted(stored)}); the file is damaged")
    names = [*adapter.nets, *(n for n in adapter.optional if n in stored)]
    nets = {name: _rebuild(name, stored[name]) for name in names}
    normalizer = _normalizer(ckpt, adapter.obs_norm(ckpt) if kind == TRAIN_KIND else True)
    policy = adapter.build(nets, normalizer, ckpt["env"])
    paths = {id(m): path for path, m in reversed(list(policy.named_modules()))}
    unused = [n for n, m in nets.items() if id(m) not in paths]
    if unused:
        raise CheckpointError(f"the {ckpt['algo']} export adapter does not use nets {unused}; "
                              "fix its build function")
    policy.net_paths = {name: paths[id(m)] for name, m in nets.items()}
    return policy.eval().requires_grad_(False)


def baked_in_steps(ckpt: dict[str, Any]) -> int | None:
    """Environment steps the checkpoint's policy was trained for (``counters.global_step``)."""
    step = (ckpt.get("counters") or {}).get("global_step")
    return int(step) if step is not None else None

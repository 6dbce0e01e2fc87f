"""rsl_rl checkpoints (``OnPolicyRunner.save``: ``torch.save`` of a dict of state dicts).

Layouts, oldest first:

- v1 (legged_gym, unitree_rl_gym): ``model_state_dict`` with ``actor.N.*`` and ``std`` (or
  ``log_std``); no normaliser in the file (the env config holds observation scales);
- 2.x: the same plus a top-level ``obs_norm_state_dict`` (``_mean``, ``_var``, ``_std``, ``count``);
- 3.x: the normaliser inside ``model_state_dict`` as ``actor_obs_normalizer.*``;
- 4.x+: ``actor_state_dict`` with ``obs_normalizer.*``, ``mlp.N.*`` and ``distribution.*``.

Recurrent actors (``ActorCriticRecurrent``: ``memory_a.rnn.*`` beside ``actor.N.*``; 4.x+ ``RNNModel``:
``rnn.rnn.*`` beside ``mlp.N.*``), LSTM or GRU with any number of layers, become an edgerl
``rnn_mlp``: normaliser -> memory -> MLP head, the hidden state an explicit input/output that is
zero at episode start (rsl_rl starts from ``hidden_state=None``, i.e. zeros, and ``reset(dones)``
zeros the state of finished episodes).

The deterministic action is the MLP's output (the Gaussian mean); rsl_rl's normaliser is
``(x - _mean) / (_std + 0.01)``, unclipped. ``action_scale``/``clip_actions``/default joint
offsets live in the environment config, not the file: give them with ``--io``.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from edgerl.interop.common import (
    ImportedPolicy,
    ImportLayoutError,
    build_mlp,
    build_recurrent,
    linear_prefixes,
    load_tensors,
    normalizer_from,
    unknown_layout,
)
from edgerl.nets.mlp import ObsNormalizer

NORMALIZER_EPS = 1e-2
"""``EmpiricalNormalization``'s default eps (rsl_rl does not save it)."""
LAYOUTS = {
    "v1/2.x": "model_state_dict{actor.N.*, std|log_std} [+ obs_norm_state_dict]",
    "3.x": "model_state_dict{actor.N.*, actor_obs_normalizer.*}",
    "4.x+": "actor_state_dict{mlp.N.*, distribution.*, obs_normalizer.*}",
    "v1/2.x recurrent": "model_state_dict{memory_a.rnn.*, actor.N.*, std|log_std} [+ obs_norm_state_dict]",
    "3.x recurrent": "model_state_dict{memory_a.rnn.*, actor.N.*, actor_obs_normalizer.*}",
    "4.x+ recurrent": "actor_state_dict{rnn.rnn.*, mlp.N.*, distribution.*, obs_normalizer.*}",
}
RNN_PREFIXES = {"actor_state_dict": "rnn.rnn.", "model_state_dict": "memory_a.rnn."}
"""Where each layout keeps the actor's torch LSTM/GRU."""


def _normalizer(state: dict[str, Any] | None, prefix: str) -> ObsNormalizer | None:
    if not state or f"{prefix}_mean" not in state:
        return None
    mean = state[f"{prefix}_mean"].double().reshape(-1)
    # The stored _std is what rsl_rl divides by; var = _std^2 gives it back exactly in float64.
    std = state.get(f"{prefix}_std")
    var = std.double().reshape(-1) ** 2 if std is not None else state[f"{prefix}_var"].double().reshape(-1)
    count = state.get(f"{prefix}count")
    return normalizer_from(mean.numpy(), var.numpy(), eps=NORMALIZER_EPS, clip=float("inf"), formula="std",
                           count=float(count) if count is not None else 1.0)


def _recurrent(state: dict[str, Any], path: str | os.PathLike, entry: str) -> bool:
    """Whether the actor has a memory (at :data:`RNN_PREFIXES`); other memories are refused."""
    prefix = RNN_PREFIXES[entry]
    if any(k.startswith(prefix) for k in state):
        return True
    odd = sorted({k.split(".")[0] for k in state if k.startswith(("memory", "rnn."))} - {"memory_c"})
    if odd:
        raise ImportLayoutError(f"{path}: {entry} holds a memory at {odd} where edgerl expects the actor's at "
                                f"{prefix}* (keys found: {', '.join(sorted(state)[:8])}); known layouts: "
                                + "; ".join(f"{k}: {v}" for k, v in LAYOUTS.items()))
    return False


def read_rsl_rl(path: str | os.PathLike, activation: str | None = None) -> ImportedPolicy:
    """Read an rsl_rl ``model_<iter>.pt`` checkpoint (any layout in :data:`LAYOUTS`)."""
    ckpt = load_tensors(path, "an rsl_rl checkpoint")
    if not isinstance(ckpt, dict):
        raise unknown_layout(path, [type(ckpt).__name__], LAYOUTS)
    act = activation or "elu"
    notes: list[str] = []
    if isinstance(ckpt.get("actor_state_dict"), dict):
        state = ckpt["actor_state_dict"]
        recurrent = _recurrent(state, path, "actor_state_dict")
        layers, layout = linear_prefixes(state, "mlp."), "4.x+"
        if not layers:
            raise unknown_layout(path, list(state), LAYOUTS)
        if "distribution.std_param" not in state and "distribution.log_std_param" not in state and any(
                k.startswith("distribution.") for k in state):
            raise ImportLayoutError(f"{path}: an rsl_rl actor with distribution parameters "
                                    f"{sorted(k for k in state if k.startswith('distribution.'))}; edgerl imports "
                                    "Gaussian actors (std_param / log_std_param)")
        norm = _normalizer(state, "obs_normalizer.")
        if not any(k.startswith("distribution.") for k in state):
            notes.append("no distribution parameters: a deterministic actor is assumed (a heteroscedastic or Beta "
                         "actor outputs two values per action: give --env or --io to check the action width)")
    elif isinstance(ckpt.get("model_state_dict"), dict):
        state = ckpt["model_state_dict"]
        recurrent = _recurrent(state, path, "model_state_dict")
        layers = linear_prefixes(state, "actor.")
        if not layers:
            raise unknown_layout(path, list(state), LAYOUTS)
        norm = _normalizer(state, "actor_obs_normalizer.")
        layout = "3.x" if norm is not None else "v1/2.x"
        if norm is None and isinstance(ckpt.get("obs_norm_state_dict"), dict):
            norm = _normalizer(ckpt["obs_norm_state_dict"], "")
    else:
        keys = [k for k, v in ckpt.items() if not isinstance(v, torch.Tensor)] or list(ckpt)
        raise unknown_layout(path, keys, LAYOUTS)
    if recurrent:
        net = build_recurrent(state, RNN_PREFIXES["actor_state_dict" if layout == "4.x+" else "model_state_dict"],
                              layers, act)
        layout += " recurrent"
        notes.append(f"{net.rnn_type.upper()} memory, {net.state_shape[0]} layer(s) of {net.state_shape[1]}: "
                     "hidden state explicit, zero at episode start")
    else:
        net = build_mlp(state, layers, act)
    return ImportedPolicy(net=net, discrete=False, library="rsl_rl", algo=layout, normalizer=norm,
                          notes=[f"rsl_rl {layout} checkpoint, activation {act}"
                                 + (", observation normaliser baked in" if norm is not None else ""), *notes])

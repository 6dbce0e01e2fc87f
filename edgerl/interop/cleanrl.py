"""CleanRL models (``.cleanrl_model``: ``torch.save`` of state dicts; CleanRL is scripts, not a package).

Layouts (the documented single-file scripts):

- ``ppo_continuous_action``: ``actor_mean.{0,2,4}`` (Tanh) and ``actor_logstd``; the action is
  the mean, clipped to the env's bounds (the script's ``ClipAction`` wrapper). The script trains
  behind ``NormalizeObservation`` and never saves its statistics: give them with ``--obs-stats``
  or say ``--no-normalizer``;
- ``td3_continuous_action`` / ``ddpg_continuous_action``: a tuple ``(actor, qf1, qf2)`` of state
  dicts, actor ``fc1``, ``fc2``, ``fc_mu`` (ReLU) with ``action_scale``/``action_bias`` buffers:
  ``tanh(fc_mu(x)) * action_scale + action_bias``;
- ``dqn``: ``network.{0,2,4}`` (ReLU) Q-values, argmax.
"""

from __future__ import annotations

import os
from typing import Any

from edgerl.interop.common import (
    ImportedPolicy,
    build_mlp,
    linear_prefixes,
    load_tensors,
    tensor_dict,
    unknown_layout,
)

LAYOUTS = {
    "ppo_continuous_action": "actor_mean.N + actor_logstd",
    "td3/ddpg": "(actor, qf1, qf2) with actor fc1, fc2, fc_mu, action_scale, action_bias",
    "dqn": "network.N (Q-values)",
}


def read_cleanrl(path: str | os.PathLike, activation: str | None = None) -> ImportedPolicy:
    """Read a CleanRL ``.cleanrl_model``."""
    obj = load_tensors(path, "a CleanRL model")
    first: Any = obj[0] if isinstance(obj, (tuple, list)) and obj else obj
    state = tensor_dict(first, str(path)) if isinstance(first, dict) else {}
    if "actor_mean.0.weight" in state or linear_prefixes(state, "actor_mean."):
        act = activation or "tanh"
        net = build_mlp(state, linear_prefixes(state, "actor_mean."), act)
        return ImportedPolicy(net=net, discrete=False, library="cleanrl", algo="ppo_continuous_action",
                              notes=[f"CleanRL ppo_continuous_action, activation {act}"])
    if all(f"{k}.weight" in state for k in ("fc1", "fc2", "fc_mu")) and "action_scale" in state:
        act = activation or "relu"
        net = build_mlp(state, ["fc1", "fc2", "fc_mu"], act)
        chain = {"squash": "tanh", "scale": state["action_scale"].double().reshape(-1).tolist(),
                 "offset": state["action_bias"].double().reshape(-1).tolist()}
        return ImportedPolicy(net=net, discrete=False, library="cleanrl", algo="td3/ddpg", action_chain=chain,
                              notes=[f"CleanRL td3/ddpg actor, activation {act}"])
    if linear_prefixes(state, "network."):
        act = activation or "relu"
        net = build_mlp(state, linear_prefixes(state, "network."), act)
        return ImportedPolicy(net=net, discrete=True, library="cleanrl", algo="dqn",
                              notes=[f"CleanRL dqn Q-network, activation {act}"])
    raise unknown_layout(path, list(state) or [type(obj).__name__], LAYOUTS)


def trained_with_normalizer(imported: ImportedPolicy) -> bool:
    """CleanRL's ppo_continuous_action always trains behind NormalizeObservation."""
    return imported.algo == "ppo_continuous_action"

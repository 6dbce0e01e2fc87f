"""``contract.json``: what the exported graph takes and gives, written beside the ONNX file.

The runtime reads it (:mod:`edgerl.runtime.contract`, which also validates what is written here).
Layout (version 1)::

    {"format": "edgerl-contract", "version": 1,
     "observation": {"name": "obs", "shape": [11], "dtype": "float64", "low": [..]|null,
                     "high": [..]|null, "names": null},
     "action": {"name": "action", "shape": [3], "dtype": "float32", "discrete": false, "n": null,
                "low": [..]|null, "high": [..]|null},
     "baked_in": ["observation_normalizer", "deterministic_head", "tanh_squash", "action_rescale"],
     "precision": "fp32" | "fp16" | "int8",
     "source": {"checkpoint": "ckpt.pt", "sha256": "...", "algo": "sac", "env_id": "Hopper-v5",
                "kind": "train" | "policy", "steps": 1000000},
     "versions": {"edgerl": "0.1.0", "torch": "...", "onnx": "...", "onnxruntime": "...", "opset": 18},
     "io": {"observation": {"terms": [{"name", "size", "unit", "scale", "low", "high"}, ...]},  (optional:
            "action": {"joint_names": [...]}, "control_rate_hz": 50},           imported policies' --io)
     "recurrent": {"kind": "lstm" | "gru", "inputs": ["h_in", "c_in"], "outputs": ["h_out", "c_out"],
                   "shape": [layers, 1, hidden], "batch_axis": 1, "dtype": "float32",
                   "reset": "zeros_at_episode_start"}}                         (only a recurrent policy)

A recurrent policy's graph takes its state beside ``obs`` and returns the next one beside
``action``; the caller feeds each output back as the next step's input and sets every state
tensor to zeros at the start of each episode (the runtime's ``Policy`` does both: ``act`` keeps
the state, ``reset`` zeros it). ``shape`` is a state tensor at batch 1 (the control loop's).

``observation.dtype`` is the environment's dtype (the runtime casts to the graph's input dtype:
float32, or uint8 for images). Bounds hold null for an infinite entry; an observation bound of one
entry applies to every element (large image spaces). ``observation.names`` stays null: gymnasium's
MuJoCo environments do not name their observation entries. Continuous ``action.low/high`` are the
bounds the graph rescales to (the env's, with an infinite bound replaced by -1/+1 as in training).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgerl.envs import action_bounds
from edgerl.errors import BundleError
from edgerl.export.errors import ExportCheckError
from edgerl.export.wrappers import DeployedPolicy
from edgerl.runtime.contract import (
    CONTRACT_FORMAT,
    CONTRACT_VERSION,
    RESET_RULES,
    parse_contract,
    state_io_names,
)


def _bounds(values: list | None) -> list | None:
    if values is None or all(v is None for v in values):
        return None
    return [None if v is None else float(v) for v in values]


def _action_section(policy: DeployedPolicy, env: dict[str, Any]) -> dict[str, Any]:
    space = env["action_space"]
    if policy.discrete:
        return {"name": "action", "shape": [], "dtype": "int64", "discrete": True, "n": int(space["n"]),
                "low": None, "high": None}
    if hasattr(policy, "action_range"):  # a policy that states its own output bounds (imported ones)
        lo, hi = policy.action_range()
        return {"name": "action", "shape": list(space["shape"]), "dtype": "float32", "discrete": False, "n": None,
                "low": _bounds([float(v) if np.isfinite(v) else None for v in lo.tolist()]),
                "high": _bounds([float(v) if np.isfinite(v) else None for v in hi.tolist()])}
    low, high = action_bounds(env)
    env_low, env_high = space.get("low") or [None] * low.size, space.get("high") or [None] * high.size
    return {
        "name": "action", "shape": list(space["shape"]), "dtype": "float32", "discrete": False, "n": None,
        "low": [float(e) if e is not None else float(v) for e, v in zip(env_low, low.tolist(), strict=True)],
        "high": [float(e) if e is not None else float(v) for e, v in zip(env_high, high.tolist(), strict=True)],
    }


def recurrent_section(kind: str, layers: int, hidden: int) -> dict[str, Any]:
    """The contract's ``recurrent`` section of a ``kind`` memory of ``layers`` x ``hidden``."""
    ins, outs = state_io_names(kind)
    return {"kind": kind, "inputs": list(ins), "outputs": list(outs), "shape": [int(layers), 1, int(hidden)],
            "batch_axis": 1, "dtype": "float32", "reset": RESET_RULES[0]}


def build_contract(ckpt: dict[str, Any], policy: DeployedPolicy, *, checkpoint: str, sha256: str,
                   steps: int | None, opset: int, versions: dict[str, str],
                   precision: str | None = None) -> dict[str, Any]:
    """The contract of ``policy`` exported from ``ckpt``, validated by the runtime's parser.

    ``precision`` is what the written graph computes in (default: the policy's own, fp32/fp16;
    ``int8`` for a quantized graph).

    Raises:
        ExportCheckError: The runtime would reject the contract (a bug worth reporting).
    """
    env = ckpt["env"]
    obs = env["observation_space"]
    contract = {
        "format": CONTRACT_FORMAT,
        "version": CONTRACT_VERSION,
        "observation": {"name": "obs", "shape": list(obs["shape"]), "dtype": str(np.dtype(obs["dtype"])),
                        "low": _bounds(obs.get("low")), "high": _bounds(obs.get("high")), "names": None},
        "action": _action_section(policy, env),
        "baked_in": policy.baked_in,
        "precision": precision or policy.precision,
        "source": {"checkpoint": checkpoint, "sha256": sha256, "algo": ckpt["algo"], "env_id": env["id"],
                   "kind": ckpt["kind"], "steps": steps},
        "versions": {**{k: versions[k] for k in ("edgerl", "torch", "onnx", "onnxruntime") if k in versions},
                     "opset": int(opset)},
    }
    if env.get("preprocessing"):  # how frames become the observation (image policies): the robot's side of it
        contract["observation"]["preprocessing"] = env["preprocessing"]
    if env.get("io"):  # the I/O description of an imported policy (edgerl import --io)
        contract["io"] = env["io"]
    if policy.recurrent is not None:
        contract["recurrent"] = recurrent_section(policy.recurrent.rnn_type, *policy.recurrent.state_shape)
    try:
        parse_contract(contract, source="contract.json")
    except BundleError as e:
        raise ExportCheckError(f"the runtime would reject the written contract ({e}); report this") from None
    return contract

"""Stable-Baselines3 zip archives (``model.save``): PPO/A2C, SAC, TD3/DDPG and DQN MlpPolicies, and
sb3-contrib's RecurrentPPO ``MlpLstmPolicy``.

The archive's ``data`` member is JSON: objects SB3 could not write as JSON are base64
cloudpickle under ``:serialized:``, with readable ``str()`` siblings for many of them (the
spaces' ``_shape``/``low``/``high``/``n``, ``policy_kwargs.activation_fn``). Only those readable
siblings are used; the pickles are never opened. ``policy.pth`` is a plain state dict. The layer
widths come from the weights; the activation from ``policy_kwargs`` (or SB3's default per
algorithm, or ``--activation``).

SB3's deterministic ``predict`` post-processing is reproduced: SAC/TD3 (and gSDE policies with
``squash_output``) squash with tanh and unscale to the action bounds; PPO/A2C clip the Gaussian
mean to the bounds; DQN and categorical PPO/A2C take the argmax.

RecurrentPPO (``lstm_actor.*`` beside ``mlp_extractor.policy_net.*``, ``action_net``, ``log_std``;
the critic's ``lstm_critic``/``critic`` and a shared LSTM change nothing for the actor) becomes an
edgerl ``rnn_mlp``: LSTM -> policy MLP -> action_net, the ``(h, c)`` state explicit and zero at
episode start, as sb3-contrib's ``predict(obs, state, episode_start)`` zeros it where
``episode_start`` is set. The post-processing is PPO's (clip the mean to the bounds).

VecNormalize statistics live in a separate pickle (``vecnormalize.pkl``); convert them with
``tools/export_vecnormalize.py`` (run where SB3 is) and pass the result as ``--obs-stats``. The
zip does not record whether VecNormalize was used, so an RL-Zoo ``vecnormalize.pkl`` beside the
archive is the only evidence edgerl can see.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgerl.errors import ConfigError
from edgerl.interop.common import (
    ImportedPolicy,
    ImportLayoutError,
    build_mlp,
    build_nature_cnn,
    build_recurrent,
    linear_prefixes,
    load_tensors,
    read_zip_member,
    tensor_dict,
    unknown_layout,
)

LAYOUTS = {
    "ppo/a2c": "mlp_extractor.policy_net.N + action_net (+ log_std)",
    "recurrentppo": "lstm_actor + mlp_extractor.policy_net.N + action_net + log_std (sb3-contrib MlpLstmPolicy)",
    "sac": "actor.latent_pi.N + actor.mu",
    "td3/ddpg": "actor.mu.N",
    "dqn": "q_net.q_net.N",
}
DEFAULT_ACTIVATION = {"ppo/a2c": "tanh", "recurrentppo": "tanh", "sac": "relu", "td3/ddpg": "relu", "dqn": "relu"}
_TORCH_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "elu": "elu", "selu": "selu", "leakyrelu": "leaky_relu",
                      "gelu": "gelu", "silu": "silu", "softplus": "softplus", "sigmoid": "sigmoid",
                      "mish": "mish", "celu": "celu"}


def _data(path: str | os.PathLike) -> dict[str, Any]:
    raw = read_zip_member(path, "data")
    if raw is None:
        raise ImportLayoutError(f"{path}: a Stable-Baselines3 archive holds a 'data' member; this zip does not")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise ImportLayoutError(f"{path}: its 'data' member is not JSON ({e})") from None


def _array(text: Any) -> np.ndarray | None:
    """A numpy ``str()`` of an array (``'[-1. -1. -8.]'``) as floats; None when truncated or unreadable."""
    if isinstance(text, list):
        text = str(text)
    if not isinstance(text, str) or "..." in text:
        return None
    try:
        return np.array([float(t) for t in re.sub(r"[\[\],]", " ", text).split()], dtype=np.float64)
    except ValueError:
        return None


def _space(entry: Any) -> dict[str, Any] | None:
    """The edgerl description of a serialized gymnasium Box/Discrete space (None if unreadable)."""
    if not isinstance(entry, dict):
        return None
    kind = str(entry.get(":type:", ""))
    if "Discrete" in kind and "MultiDiscrete" not in kind:
        try:
            return {"kind": "discrete", "n": int(entry["n"]), "shape": [], "dtype": "int64",
                    "start": int(entry.get("start", 0))}
        except (KeyError, ValueError, TypeError):
            return None
    if "Box" not in kind:
        return None
    shape, low, high = _array(entry.get("_shape")), _array(entry.get("low")), _array(entry.get("high"))
    if shape is None:
        return None
    n = int(np.prod(shape, dtype=np.int64))

    def bound(arr: np.ndarray | None) -> list | None:
        if arr is None:
            return None
        arr = np.broadcast_to(arr, (n,)) if arr.size == 1 else arr
        return [float(v) if np.isfinite(v) else None for v in arr] if arr.size == n else None

    lo, hi = bound(low), bound(high)
    if (lo is None or hi is None) and str(entry.get("dtype")) == "uint8":  # images: numpy truncates the repr
        lo, hi = [0.0], [255.0]
    if lo is None or hi is None:
        return None
    return {"kind": "box", "shape": [int(d) for d in shape], "dtype": str(entry.get("dtype", "float32")),
            "low": lo, "high": hi}


def _activation(data: dict[str, Any], layout: str, override: str | None) -> str:
    if override:
        return override
    kwargs = data.get("policy_kwargs")
    text = kwargs.get("activation_fn") if isinstance(kwargs, dict) else None
    if isinstance(text, str):
        m = re.search(r"\.(\w+)'>", text)
        name = _TORCH_ACTIVATIONS.get(m.group(1).lower()) if m else None
        if name is None:
            raise ConfigError(f"the SB3 policy uses activation {text}, which edgerl cannot read; "
                              "pass --activation (relu, tanh, elu, ...)")
        return name
    return DEFAULT_ACTIVATION[layout]


def _layout(state: dict[str, Any]) -> str | None:
    keys = set(state)
    if "action_net.weight" in keys and "lstm_actor.weight_hh_l0" in keys:
        return "recurrentppo"
    if "action_net.weight" in keys:
        return "ppo/a2c"
    if "actor.mu.weight" in keys and any(k.startswith("actor.latent_pi.") for k in keys):
        return "sac"
    if any(k.startswith("actor.mu.") for k in keys):
        return "td3/ddpg"
    if any(k.startswith("q_net.q_net.") for k in keys):
        return "dqn"
    return None


def read_sb3(path: str | os.PathLike, activation: str | None = None) -> ImportedPolicy:
    """Read a Stable-Baselines3 ``model.zip`` (MlpPolicy)."""
    data = _data(path)
    raw = read_zip_member(path, "policy.pth")
    if raw is None:
        raise ImportLayoutError(f"{path}: the SB3 archive has no policy.pth")
    state = tensor_dict(load_tensors(io.BytesIO(raw), "an SB3 policy state dict"), f"{path}:policy.pth")
    layout = _layout(state)
    if layout is None:
        raise unknown_layout(path, list(state), LAYOUTS)
    obs_space, action_space = _space(data.get("observation_space")), _space(data.get("action_space"))
    entry = data.get("action_space")
    kind = str(entry.get(":type:", "")) if isinstance(entry, dict) else ""
    multi = next((k for k in ("MultiDiscrete", "MultiBinary") if k in kind), None)
    if multi:  # several heads: not one argmax over all the logits
        raise ImportLayoutError(f"{path}: the policy acts in a {multi} space; edgerl imports Box and Discrete actions")
    if any(".cnn." in k or k.startswith("features_extractor.cnn") for k in state):
        return _read_cnn(path, data, state, layout, obs_space, action_space)
    act = _activation(data, layout, activation)
    version = (read_zip_member(path, "_stable_baselines3_version") or b"?").decode(errors="replace").strip()
    notes = [f"Stable-Baselines3 {version} {layout} archive, activation {act}"]
    chain: dict[str, Any] = {}
    if layout in ("ppo/a2c", "recurrentppo"):
        layers = [*linear_prefixes(state, "mlp_extractor.shared_net."),
                  *linear_prefixes(state, "mlp_extractor.policy_net."), "action_net"]
        discrete = "log_std" not in state
        if not discrete:
            kwargs = data.get("policy_kwargs") if isinstance(data.get("policy_kwargs"), dict) else {}
            squash = bool(data.get("use_sde")) and str(kwargs.get("squash_output", "False")) == "True"
            chain = _unscale(action_space) if squash else _clip(action_space)
    elif layout == "sac":
        layers, discrete = [*linear_prefixes(state, "actor.latent_pi."), "actor.mu"], False
        chain = _unscale(action_space)
    elif layout == "td3/ddpg":
        layers, discrete = linear_prefixes(state, "actor.mu."), False
        chain = _unscale(action_space)
    else:
        layers, discrete = linear_prefixes(state, "q_net.q_net."), True
    net = build_recurrent(state, "lstm_actor.", layers, act) if layout == "recurrentppo" else \
        build_mlp(state, layers, act)
    return ImportedPolicy(net=net, discrete=discrete, library="sb3", algo=layout, action_chain=chain,
                          obs_space=obs_space, action_space=action_space, notes=notes)


def _read_cnn(path: str | os.PathLike, data: dict[str, Any], state: dict[str, Any], layout: str,
              obs_space: dict[str, Any] | None, action_space: dict[str, Any] | None) -> ImportedPolicy:
    """SB3 CnnPolicy (NatureCNN features): PPO/A2C (``features_extractor`` or ``pi_features_extractor``,
    empty ``mlp_extractor.policy_net``, ``action_net``) and DQN (``q_net.features_extractor``, ``q_net.q_net.0``)."""
    kwargs = data.get("policy_kwargs") if isinstance(data.get("policy_kwargs"), dict) else {}
    if str(kwargs.get("normalize_images", True)) not in ("True", "true", "1"):
        raise ImportLayoutError(f"{path}: a CnnPolicy with normalize_images=False; edgerl's image encoders "
                                "scale uint8 frames by 1/255 as SB3 does by default")
    if obs_space is None or obs_space.get("dtype") != "uint8" or len(obs_space["shape"]) != 3:
        raise ImportLayoutError(f"{path}: a CnnPolicy whose observation space is not readable as uint8 [C, H, W] "
                                f"({obs_space}); edgerl imports image policies on uint8 channel-first frames")
    if layout == "dqn":
        prefix, head = "q_net.features_extractor.", "q_net.q_net.0"
        if linear_prefixes(state, "q_net.q_net.") != [head]:
            raise ImportLayoutError(f"{path}: a CnnPolicy DQN with hidden layers after the CNN; not supported")
        discrete, chain = True, {}
    elif layout == "ppo/a2c":
        prefix = "pi_features_extractor." if any(k.startswith("pi_features_extractor.") for k in state) \
            else "features_extractor."
        head = "action_net"
        if linear_prefixes(state, "mlp_extractor.policy_net.") or linear_prefixes(state, "mlp_extractor.shared_net."):
            raise ImportLayoutError(f"{path}: a CnnPolicy with an MLP after the CNN (net_arch); edgerl imports "
                                    "CnnPolicies with the default empty net_arch")
        discrete = "log_std" not in state
        chain = {} if discrete else _clip(action_space)
    else:
        raise ImportLayoutError(f"{path}: a {layout} CnnPolicy; edgerl imports PPO/A2C and DQN CnnPolicies")
    net = build_nature_cnn(state, prefix, head, obs_space["shape"])
    version = (read_zip_member(path, "_stable_baselines3_version") or b"?").decode(errors="replace").strip()
    return ImportedPolicy(net=net, discrete=discrete, library="sb3", algo=f"{layout} cnn", action_chain=chain,
                          obs_space=obs_space, action_space=action_space,
                          notes=[f"Stable-Baselines3 {version} {layout} CnnPolicy (NatureCNN), frames / 255 in the net"])


def _box_bounds(space: dict[str, Any] | None) -> tuple[list, list] | None:
    if space is None or space.get("kind") != "box":
        return None
    return space["low"], space["high"]


def _unscale(space: dict[str, Any] | None) -> dict[str, Any]:
    """tanh, then ``low + (a + 1) / 2 * (high - low)`` (SB3's ``unscale_action``)."""
    bounds = _box_bounds(space)
    if bounds is None or any(v is None for v in [*bounds[0], *bounds[1]]):
        raise ImportLayoutError("the SB3 archive's action space is unreadable or unbounded; a squashed policy "
                                "needs finite action bounds: pass --env")
    low, high = np.asarray(bounds[0], dtype=np.float64), np.asarray(bounds[1], dtype=np.float64)
    half = 0.5 * (high - low)
    return {"squash": "tanh", "scale": half.tolist(), "offset": (low + half).tolist()}


def _clip(space: dict[str, Any] | None) -> dict[str, Any]:
    """``clip(mean, low, high)`` (SB3's ``predict`` for an unsquashed Box policy)."""
    bounds = _box_bounds(space)
    if bounds is None:
        return {}
    return {"clip_low": bounds[0], "clip_high": bounds[1]}


def chain_for_env(imported: ImportedPolicy, env_action_space: dict[str, Any]) -> dict[str, Any]:
    """The SB3 post-processing recomputed for an action space taken from ``--env``."""
    if imported.action_chain.get("squash") == "tanh":
        return _unscale(env_action_space)
    return _clip(env_action_space)


def vecnormalize_beside(path: str | os.PathLike) -> Path | None:
    """An RL-Zoo ``vecnormalize.pkl`` next to the archive (evidence of VecNormalize training)."""
    folder = Path(path).parent
    for candidate in (folder / "vecnormalize.pkl", *folder.glob("*/vecnormalize.pkl")):
        if candidate.is_file():
            return candidate
    return None

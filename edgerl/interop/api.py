"""``import_policy``: another library's policy file -> an edgerl ``kind: "policy"`` checkpoint payload.

The payload is what ``edgerl train``/``compact`` write, so compact, export, deploy, bench, run
and distill take it unchanged: algorithm ``continuous`` (one ``policy`` net, then the action
chain stored as ``env["action_chain"]``) or ``discrete`` (argmax of the ``policy`` net).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgerl.errors import ConfigError
from edgerl.export.policy import policy_checkpoint_payload
from edgerl.export.wrappers import ActionChainPolicy
from edgerl.interop.common import (
    ImportedPolicy,
    ImportLayoutError,
    box_space,
    normalizer_denominator,
    normalizer_from,
)
from edgerl.interop.io import IODescription, check_widths, read_io
from edgerl.interop.stats import read_obs_stats
from edgerl.nets.mlp import MLP, ObsNormalizer, SquashedGaussianActor
from edgerl.runtime.fileio import sha256_file

LIBRARIES = ("sb3", "rsl_rl", "cleanrl", "skrl")


def _reader(library: str) -> Callable[..., ImportedPolicy]:
    if library == "sb3":
        from edgerl.interop.sb3 import read_sb3
        return read_sb3
    if library == "rsl_rl":
        from edgerl.interop.rsl_rl import read_rsl_rl
        return read_rsl_rl
    if library == "cleanrl":
        from edgerl.interop.cleanrl import read_cleanrl
        return read_cleanrl
    if library == "skrl":
        from edgerl.interop.skrl import read_skrl
        return read_skrl
    raise ConfigError(f"--from {library!r} is not known; known: {', '.join(LIBRARIES)}")


def _stats_normalizer(stats: dict[str, Any], obs_dim: int, where: str) -> ObsNormalizer:
    if stats["mean"].size != obs_dim or stats["var"].size != obs_dim:
        raise ConfigError(f"{where} holds statistics of {stats['mean'].size} entries but the network takes {obs_dim}")
    return normalizer_from(stats["mean"], stats["var"], eps=stats["eps"], clip=stats["clip"],
                           formula=stats["formula"])


def fold_obs_scale(norm: ObsNormalizer | None, scale: np.ndarray) -> ObsNormalizer:
    """A normaliser computing ``norm(scale * x)`` (``x * scale`` alone when there is none):
    ``(scale * x - mean) / d == (x - mean / scale) / (d / scale)``."""
    if norm is None:
        return normalizer_from(np.zeros(scale.size), (1.0 / scale) ** 2, eps=0.0, clip=float("inf"), formula="var")
    denom = normalizer_denominator(norm)
    return normalizer_from(norm.mean.double().numpy() / scale, (denom / scale) ** 2, eps=0.0, clip=norm.clip,
                           formula="var", count=float(norm.count))


def _env_info(env_id: str) -> dict[str, Any]:
    from edgerl.envs import make_env, space_env_info

    env = make_env(env_id)
    try:
        return space_env_info(env)
    finally:
        env.close()


def _check_spaces(imported: ImportedPolicy, obs: dict[str, Any], act: dict[str, Any], where: str) -> None:
    shape, out_dim = imported.obs_shape, imported.out_dim
    if obs.get("kind") != "box" or list(obs["shape"]) != shape:
        raise ConfigError(f"{where} observes {obs.get('kind')} {obs.get('shape')} but the network takes {shape}")
    if imported.discrete:
        if act.get("kind") != "discrete" or int(act["n"]) != out_dim:
            raise ConfigError(f"{where} has action space {act.get('kind')} n={act.get('n')} but the network "
                              f"scores {out_dim} discrete actions")
    elif act.get("kind") != "box" or int(np.prod(act["shape"], dtype=np.int64)) != out_dim:
        raise ConfigError(f"{where} has action space {act.get('kind')} {act.get('shape')} but the network "
                          f"outputs {out_dim} continuous actions")


def _apply_io(imported: ImportedPolicy, io: IODescription, source: str) -> None:
    if io.recurrent is not None:
        raise ConfigError(f"{source}: recurrent describes the state tensors of an ONNX graph (--from onnx); a "
                          "library checkpoint records its memory itself: drop the recurrent section")
    if imported.image and (io.terms or io.normalizer is not None):
        raise ConfigError(f"{source}: observation terms and normalisers describe vector observations; "
                          f"the network takes images {imported.obs_shape}")
    check_widths(io, imported.obs_dim, imported.out_dim, source)
    if imported.discrete and any(v is not None for v in (io.clip_low, io.scale, io.offset)):
        raise ConfigError(f"{source}: action clip/scale/offset do not apply to a discrete (argmax) policy")
    chain = imported.action_chain
    if io.clip_low is not None:
        chain["clip_low"], chain["clip_high"] = io.clip_low, io.clip_high
    if io.scale is not None:
        chain["scale"] = io.scale
    if io.offset is not None:
        chain["offset"] = io.offset


def import_policy(src: str | os.PathLike, library: str, *, env_id: str | None = None,
                  io_path: str | os.PathLike | None = None, obs_stats: str | os.PathLike | None = None,
                  no_normalizer: bool = False, activation: str | None = None,
                  out_activation: str | None = None) -> tuple[dict[str, Any], ImportedPolicy]:
    """Read ``src`` written by ``library`` and return the policy-checkpoint payload and what was read.

    Args:
        src: The library's file (SB3 zip, rsl_rl/skrl ``.pt``, CleanRL ``.cleanrl_model``).
        library: ``sb3``, ``rsl_rl``, ``cleanrl`` or ``skrl``.
        env_id: Gymnasium env whose spaces the policy acts in (checked against the network; needed
            for rollouts in export/run, and for action bounds the file does not record).
        io_path: ``io.yaml`` (:mod:`edgerl.interop.io`).
        obs_stats: Normaliser statistics (``.npz``/``.json``) the file lacks (SB3 VecNormalize,
            CleanRL NormalizeObservation).
        no_normalizer: Import a policy trained with a normaliser without its statistics.
        activation: Hidden activation overriding the library default / the file's record.
        out_activation: Output activation (skrl output expressions such as ``tanh(ACTIONS)``).

    Raises:
        ImportLayoutError: Unknown layout (names the keys found and the layouts known).
        ConfigError: Bad option, missing normaliser statistics, widths that disagree.
    """
    if not Path(src).is_file():
        raise ConfigError(f"{src}: no such file")
    reader = _reader(library)
    kwargs: dict[str, Any] = {"activation": activation}
    if library == "skrl":
        kwargs["out_activation"] = out_activation
    elif out_activation:
        raise ConfigError("--out-activation applies to --from skrl only (the other layouts record their output)")
    imported = reader(src, **kwargs)
    io = read_io(io_path) if io_path is not None else None
    env = _env_info(env_id) if env_id else None

    obs = env["observation_space"] if env else imported.obs_space
    act = env["action_space"] if env else imported.action_space
    if env is not None:
        _check_spaces(imported, obs, act, env_id)
    if env is not None and library == "sb3" and not imported.discrete:
        from edgerl.interop.sb3 import chain_for_env

        imported.action_chain = chain_for_env(imported, act)
    if env is not None and library == "cleanrl" and imported.algo == "ppo_continuous_action":
        imported.action_chain = {"clip_low": act.get("low"), "clip_high": act.get("high")}
    obs = obs or (box_space(imported.obs_shape, 0, 255, "uint8") if imported.image else box_space(imported.obs_shape))
    if imported.discrete:
        act = act or {"kind": "discrete", "n": imported.out_dim, "shape": [], "dtype": "int64", "start": 0}
    _check_spaces(imported, obs, act or box_space([imported.out_dim]), env_id or str(src))

    # Normaliser: the file's, or statistics given here; refused when training used one we lack.
    given = read_obs_stats(obs_stats) if obs_stats is not None else (io.normalizer if io is not None else None)
    if given is not None:
        if imported.normalizer is not None:
            raise ConfigError(f"{src} already holds its observation normaliser; drop --obs-stats / io normalizer")
        imported.normalizer = _stats_normalizer(given, imported.obs_dim, str(obs_stats or io_path))
        imported.notes.append("observation normaliser statistics given separately, baked in")
    elif imported.normalizer is None and not no_normalizer:
        _refuse_without_stats(imported, src, library)
    if io is not None:
        _apply_io(imported, io, str(io_path))
        scale = io.obs_scale()
        if scale is not None:
            imported.normalizer = fold_obs_scale(imported.normalizer, scale)
            imported.notes.append("observation scales from --io baked in")

    env_entry: dict[str, Any] = {"id": env_id or "unknown", "observation_space": obs}
    if imported.discrete:
        env_entry["action_space"] = act
    else:
        chain = {k: v for k, v in imported.action_chain.items() if v is not None}
        low, high = ActionChainPolicy(imported.net, None, act_dim=imported.out_dim,
                                      squash=chain.get("squash") == "tanh",
                                      **{k: chain.get(k) for k in ("clip_low", "clip_high", "scale", "offset")}
                                      ).action_range()
        env_entry["action_space"] = box_space([imported.out_dim], low, high)
        env_entry["action_chain"] = chain
    if io is not None and io.contract_section():
        env_entry["io"] = io.contract_section()
    algo = "discrete" if imported.discrete else "continuous"
    deployed: dict[str, Any] = {"policy": imported.net}
    actor = None if imported.discrete else sac_actor(imported.net, env_entry["action_chain"])
    if actor is not None:  # tanh + unscale to finite bounds: exactly edgerl's SAC policy
        algo, deployed = "sac", {"actor": actor}
        del env_entry["action_chain"]
    if imported.normalizer is not None:
        deployed["normalizer"] = imported.normalizer
    config = {"import": {"library": library, "layout": imported.algo, "activation": getattr(imported.net, "activation", "relu"),
                         "env": env_id, "io": None if io_path is None else str(io_path),
                         "obs_stats": None if obs_stats is None else str(obs_stats),
                         "no_normalizer": bool(no_normalizer)}}
    payload = policy_checkpoint_payload(
        algo, env_entry, config, deployed,
        source={"checkpoint": str(src), "sha256": sha256_file(src), "kind": f"import:{library}",
                "library": library, "layout": imported.algo})
    return payload, imported


def sac_actor(net: nn.Module, chain: dict[str, Any]) -> SquashedGaussianActor | None:
    """The imported MLP as edgerl's SAC actor when its chain is tanh -> unscale to finite bounds
    (SB3 SAC/TD3, CleanRL TD3/DDPG, skrl tanh outputs), else None. Such a policy is then an edgerl
    SAC policy checkpoint: ``low + (tanh(mean) + 1) * (high - low) / 2``, which every command,
    distillation included, already knows. The log-std head is zero (deployment does not use it)."""
    if not isinstance(net, MLP) or net.out_activation or chain.get("squash") != "tanh" or \
            chain.get("clip_low") is not None or chain.get("clip_high") is not None:
        return None
    scale = np.asarray(chain.get("scale", 1.0), dtype=np.float64)
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        return None
    spec = net.spec()
    actor = SquashedGaussianActor(spec["in_dim"], net.out_dim, spec["hidden"], activation=net.activation)
    with torch.no_grad():
        for ours, theirs in zip([m for m in actor.trunk if isinstance(m, nn.Linear)],
                                [m for m in net.trunk if isinstance(m, nn.Linear)], strict=True):
            ours.load_state_dict(theirs.state_dict())
        actor.mean.load_state_dict(net.head.state_dict())
        actor.log_std.weight.zero_()
        actor.log_std.bias.zero_()
    return actor.eval()


def _refuse_without_stats(imported: ImportedPolicy, src: str | os.PathLike, library: str) -> None:
    if library == "cleanrl":
        from edgerl.interop.cleanrl import trained_with_normalizer

        if trained_with_normalizer(imported):
            raise ConfigError(f"{src}: CleanRL's {imported.algo} trains behind NormalizeObservation and does not "
                              "save its statistics; pass them with --obs-stats (npz/json with mean, var) or "
                              "import without them with --no-normalizer (actions will differ)")
    if library == "sb3":
        from edgerl.interop.sb3 import vecnormalize_beside

        found = vecnormalize_beside(src)
        if found is not None:
            raise ConfigError(f"{found} lies beside {Path(src).name}: the policy was trained with VecNormalize; "
                              "convert it with tools/export_vecnormalize.py and pass --obs-stats, or import "
                              "without it with --no-normalizer")


__all__ = ["LIBRARIES", "ImportLayoutError", "fold_obs_scale", "import_policy", "read_obs_stats"]

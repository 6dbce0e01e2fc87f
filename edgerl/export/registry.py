"""Per-algorithm export adapters: which networks a policy needs and how they are wrapped.

An algorithm plugs into ``edgerl export`` with one call::

    register_export(ExportAdapter(algo="dqn", nets=("q_network",), build=argmax_policy,
                                  aliases={"policy": "q_network"}, make_env=make_image_rollout_env))

``nets`` names the entries of a checkpoint's ``agent["nets"]`` the deployed policy always uses,
``optional`` those it uses when present (SAC's OFENet state block); ``aliases`` maps the keys of
the agent's ``deployed_nets()`` to those names where they differ; ``build`` wraps the rebuilt
networks; ``make_env`` makes the environment the parity check rolls (with the preprocessing the
agent trained with). SAC, PPO and DQN are registered here, and the two adapters of policies
imported from other libraries (``edgerl import``): ``continuous`` (one ``policy`` net, then the
action chain of ``env["action_chain"]``) and ``discrete`` (argmax of one ``policy`` net). Another algorithm may register in its
own module ``edgerl/algos/<algo>.py``: :func:`export_adapter` imports that module before giving up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

import edgerl
from edgerl.envs import action_bounds, make_env
from edgerl.errors import CheckpointError
from edgerl.export.wrappers import (
    ActionChainPolicy,
    ArgmaxPolicy,
    DeployedPolicy,
    SquashedGaussianPolicy,
)
from edgerl.nets.mlp import ObsNormalizer

PolicyBuilder = Callable[[dict[str, nn.Module], "ObsNormalizer | None", dict[str, Any]], DeployedPolicy]
"""``build(nets, normalizer, env_info) -> DeployedPolicy``; ``env_info`` is a checkpoint's ``env``."""


def train_obs_norm(ckpt: dict[str, Any]) -> bool:
    """Whether a train checkpoint's agent normalised observations (``config.algo.obs_norm``)."""
    return bool(ckpt.get("config", {}).get("algo", {}).get("obs_norm", False))


def make_rollout_env(ckpt: dict[str, Any], seed: int | None = None) -> Any:
    """``gymnasium.make`` of the checkpoint's env id (vector-observation envs)."""
    return make_env(ckpt["env"]["id"], seed=seed)


def make_image_rollout_env(ckpt: dict[str, Any], seed: int | None = None) -> Any:
    """The preprocessed image env (frame stack, resize, ...) the checkpoint's agent trained on,
    in evaluation mode (``env.preprocessing`` of the checkpoint)."""
    from edgerl.algos.atari import make_recorded_env

    return make_recorded_env(ckpt["env"]["id"], ckpt["env"].get("preprocessing"), seed)


@dataclass(frozen=True)
class ExportAdapter:
    """How one algorithm's checkpoint becomes a :class:`DeployedPolicy`."""

    algo: str
    """Algorithm name as stored in checkpoints (``ckpt["algo"]``)."""
    nets: tuple[str, ...]
    """Names in ``agent["nets"]`` of the networks the policy runs, in the order ``build`` takes them."""
    build: PolicyBuilder
    """Wraps the rebuilt networks, the normaliser (None if disabled) and the env description."""
    optional: tuple[str, ...] = ()
    """Nets the policy also runs when the checkpoint holds them (e.g. SAC's ``ofenet_state``)."""
    aliases: Mapping[str, str] = field(default_factory=dict)
    """``deployed_nets()`` key -> checkpoint net name, where they differ (PPO: policy -> net)."""
    obs_norm: Callable[[dict[str, Any]], bool] = train_obs_norm
    """Whether a train checkpoint's normaliser is active (policy checkpoints record it themselves)."""
    make_env: Callable[[dict[str, Any], int | None], Any] = make_rollout_env
    """Makes the env rolled for recorded observations: ``make_env(ckpt, seed)``."""

    def net_name(self, deployed_key: str) -> str:
        """Checkpoint name of a ``deployed_nets()`` entry."""
        return self.aliases.get(deployed_key, deployed_key)


def squashed_gaussian_policy(nets: dict[str, nn.Module], normalizer: ObsNormalizer | None,
                             env: dict[str, Any]) -> DeployedPolicy:
    """SAC: normaliser -> actor mean -> tanh -> rescale to the env's action bounds."""
    if env["action_space"].get("kind") != "box":
        raise CheckpointError(f"a squashed Gaussian policy needs a Box action space, got {env['action_space']}")
    low, high = action_bounds(env)
    return SquashedGaussianPolicy(nets["actor"], normalizer, low, high, features=nets.get("ofenet_state"))


def argmax_policy(nets: dict[str, nn.Module], normalizer: ObsNormalizer | None,
                  env: dict[str, Any]) -> DeployedPolicy:
    """DQN / PPO-discrete: argmax of the single deployed network's scores (the first element when
    it returns a tuple, e.g. PPO's ``(logits, value)``), offset by the space's ``start``."""
    space = env["action_space"]
    if space.get("kind") != "discrete":
        raise CheckpointError(f"an argmax policy needs a Discrete action space, got {space}")
    (net,) = nets.values()
    return ArgmaxPolicy(net, normalizer, select=0, start=int(space.get("start", 0)))


ACTION_CHAIN_KEYS = ("squash", "clip_low", "clip_high", "scale", "offset")
"""Keys of a checkpoint's ``env["action_chain"]`` (each optional; lists are per action element)."""


def action_chain_policy(nets: dict[str, nn.Module], normalizer: ObsNormalizer | None,
                        env: dict[str, Any]) -> DeployedPolicy:
    """Imported continuous policies: normaliser -> net -> [tanh] -> [clip] -> [scale] -> [offset],
    the steps read from ``env["action_chain"]`` (written by ``edgerl import``)."""
    space = env["action_space"]
    if space.get("kind") != "box":
        raise CheckpointError(f"a continuous policy needs a Box action space, got {space}")
    chain = env.get("action_chain") or {}
    unknown = sorted(set(chain) - set(ACTION_CHAIN_KEYS))
    if unknown or chain.get("squash") not in (None, "tanh"):
        raise CheckpointError(f"env.action_chain holds {unknown or chain.get('squash')!r}; this edgerl knows "
                              f"{list(ACTION_CHAIN_KEYS)} with squash null|'tanh'; use a newer edgerl")
    act_dim = int(np.prod(space["shape"], dtype=np.int64))
    try:
        return ActionChainPolicy(nets["policy"], normalizer, act_dim=act_dim, squash=chain.get("squash") == "tanh",
                                 **{k: chain.get(k) for k in ACTION_CHAIN_KEYS[1:]})
    except ValueError as e:
        raise CheckpointError(f"env.action_chain is inconsistent: {e}") from None


_ADAPTERS: dict[str, ExportAdapter] = {}


def register_export(adapter: ExportAdapter) -> ExportAdapter:
    """Make ``adapter.algo`` exportable (a later registration replaces an earlier one)."""
    _ADAPTERS[adapter.algo] = adapter
    return adapter


def export_adapter(algo: str) -> ExportAdapter:
    """The adapter of ``algo``, importing ``edgerl.algos.<algo>`` once to let it register.

    Raises:
        CheckpointError: No adapter is registered for ``algo``.
    """
    if algo not in _ADAPTERS and isinstance(algo, str) and algo.isidentifier():
        try:
            importlib.import_module(f"edgerl.algos.{algo}")
        except ImportError:
            pass
    try:
        return _ADAPTERS[algo]
    except KeyError:
        raise CheckpointError(
            f"edgerl {edgerl.__version__} cannot export {algo!r} policies (exportable: "
            f"{', '.join(sorted(_ADAPTERS))}); use the edgerl version that trained it"
        ) from None


register_export(ExportAdapter(algo="sac", nets=("actor",), optional=("ofenet_state",),
                              build=squashed_gaussian_policy))
register_export(ExportAdapter(algo="ppo", nets=("net",), aliases={"policy": "net"}, build=argmax_policy,
                              make_env=make_image_rollout_env))
register_export(ExportAdapter(algo="dqn", nets=("q_network",), aliases={"policy": "q_network"},
                              build=argmax_policy, make_env=make_image_rollout_env))
# Policies imported from other libraries (edgerl import): one "policy" net on vector observations.
register_export(ExportAdapter(algo="continuous", nets=("policy",), build=action_chain_policy))
register_export(ExportAdapter(algo="discrete", nets=("policy",), build=argmax_policy))

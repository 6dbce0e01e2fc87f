"""Per-algorithm export adapters: which networks a policy needs and how they are wrapped.

An algorithm plugs into ``edgerl export`` with one call::

    register_export(ExportAdapter(algo="dqn", nets=("q_network",), build=argmax_policy))

``nets`` names the entries of a checkpoint's ``agent["nets"]`` the deployed policy uses (the
networks of its agent's ``deployed_nets()``, without the normaliser); ``build`` wraps the rebuilt
networks. A registration may live in the algorithm's own module ``edgerl/algos/<algo>.py``:
:func:`export_adapter` imports that module before giving up on an unknown algorithm.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

import edgerl
from edgerl.envs import action_bounds
from edgerl.errors import CheckpointError
from edgerl.export.wrappers import ArgmaxPolicy, DeployedPolicy, SquashedGaussianPolicy
from edgerl.nets.mlp import ObsNormalizer

PolicyBuilder = Callable[[dict[str, nn.Module], "ObsNormalizer | None", dict[str, Any]], DeployedPolicy]
"""``build(nets, normalizer, env_info) -> DeployedPolicy``; ``env_info`` is a checkpoint's ``env``."""


def train_obs_norm(ckpt: dict[str, Any]) -> bool:
    """Whether a train checkpoint's agent normalised observations (``config.algo.obs_norm``)."""
    return bool(ckpt.get("config", {}).get("algo", {}).get("obs_norm", False))


@dataclass(frozen=True)
class ExportAdapter:
    """How one algorithm's checkpoint becomes a :class:`DeployedPolicy`."""

    algo: str
    """Algorithm name as stored in checkpoints (``ckpt["algo"]``)."""
    nets: tuple[str, ...]
    """Names in ``agent["nets"]`` of the networks the policy runs, in the order ``build`` takes them."""
    build: PolicyBuilder
    """Wraps the rebuilt networks, the normaliser (None if disabled) and the env description."""
    obs_norm: Callable[[dict[str, Any]], bool] = train_obs_norm
    """Whether a train checkpoint's normaliser is active (policy checkpoints record it themselves)."""


def squashed_gaussian_policy(nets: dict[str, nn.Module], normalizer: ObsNormalizer | None,
                             env: dict[str, Any]) -> DeployedPolicy:
    """SAC: normaliser -> actor mean -> tanh -> rescale to the env's action bounds."""
    if env["action_space"].get("kind") != "box":
        raise CheckpointError(f"a squashed Gaussian policy needs a Box action space, got {env['action_space']}")
    low, high = action_bounds(env)
    return SquashedGaussianPolicy(nets["actor"], normalizer, low, high)


def argmax_policy(nets: dict[str, nn.Module], normalizer: ObsNormalizer | None,
                  env: dict[str, Any]) -> DeployedPolicy:
    """DQN / PPO-discrete: the single deployed network's argmax, offset by the space's ``start``."""
    space = env["action_space"]
    if space.get("kind") != "discrete":
        raise CheckpointError(f"an argmax policy needs a Discrete action space, got {space}")
    (net,) = nets.values()
    return ArgmaxPolicy(net, normalizer, start=int(space.get("start", 0)))


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


register_export(ExportAdapter(algo="sac", nets=("actor",), build=squashed_gaussian_policy))

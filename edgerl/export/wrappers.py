"""What gets exported: a policy module mapping a raw observation batch to environment actions.

Each wrapper is the deployed policy in one ``forward`` (in the manner of rsl_rl's ``as_onnx()``):
observation -> normaliser -> network -> deterministic head -> squash -> rescale. The exported
graph therefore emits actions the environment accepts, with nothing left for the robot to do.

The wrappers can also run their networks in float16 (:meth:`DeployedPolicy.to_fp16`): the
observation, the normaliser and the action stay float32; each layer with weights casts its input
to its weights' dtype, so the graph carries explicit Casts into float16 (what strongly typed
TensorRT >= 11 needs to build FP16 kernels) even where a network upcasts internally (the image
encoders scale uint8 pixels in float32).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from edgerl.nets.mlp import ObsNormalizer


class DeployedPolicy(nn.Module):
    """Base of the exported policies: ``forward(obs[batch, *obs_shape]) -> action[batch, ...]``."""

    discrete: bool = False
    """True when the action is an integer index (argmax), False for continuous actions."""

    def __init__(self, net: nn.Module, normalizer: ObsNormalizer | None) -> None:
        super().__init__()
        self.net = net
        self.normalizer = normalizer if normalizer is not None and normalizer.enabled else None
        self.compute_dtype = torch.float32
        self.net_paths: dict[str, str] = {"net": "net"}
        """Checkpoint net name -> submodule path in this wrapper (set by ``policy_from_checkpoint``)."""
        self.eval().requires_grad_(False)

    def nets(self) -> dict[str, nn.Module]:
        """The wrapped networks under their checkpoint names (e.g. ``{"actor": ...}``)."""
        return {name: self.get_submodule(path) for name, path in self.net_paths.items()}

    @property
    def baked_in(self) -> list[str]:
        """Steps the exported graph performs, in order (recorded in ``contract.json``)."""
        return ["observation_normalizer"] if self.normalizer is not None else []

    @property
    def precision(self) -> str:
        """``fp32`` or ``fp16`` (dtype of the network's weights)."""
        return "fp16" if self.compute_dtype == torch.float16 else "fp32"

    def to_fp16(self) -> DeployedPolicy:
        """A copy whose networks compute in float16; normaliser, input and output stay float32."""
        half = copy.deepcopy(self)
        for net in half.nets().values():
            net.half()
            for module in net.modules():
                if next(module.parameters(recurse=False), None) is not None:
                    module.register_forward_pre_hook(_cast_to_weights)
        half.compute_dtype = torch.float16
        return half

    def _normalized(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observation -> float32, normalised if the policy has a normaliser."""
        x = obs if obs.dtype == torch.float32 else obs.to(torch.float32)
        return x if self.normalizer is None else self.normalizer(x)

    @staticmethod
    def _float32(t: torch.Tensor) -> torch.Tensor:
        return t if t.dtype == torch.float32 else t.to(torch.float32)


class SquashedGaussianPolicy(DeployedPolicy):
    """SAC's deployed policy: ``low + (tanh(mean(features(normalise(obs)))) + 1) / 2 * (high - low)``.

    ``net`` is a :class:`~edgerl.nets.mlp.SquashedGaussianActor` (its forward returns
    ``(mean, log_std)``; only the mean is used, so ``log_std`` is pruned from the graph).
    ``features`` is an optional block between normaliser and actor (OFENet's state block).
    """

    def __init__(self, actor: nn.Module, normalizer: ObsNormalizer | None,
                 low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray,
                 features: nn.Module | None = None) -> None:
        super().__init__(actor, normalizer)
        self.features = features
        if features is not None:
            self.features.eval().requires_grad_(False)
            self.net_paths = {"features": "features", "net": "net"}
        low_t = torch.as_tensor(np.asarray(low, dtype=np.float32))
        high_t = torch.as_tensor(np.asarray(high, dtype=np.float32))
        self.register_buffer("low", low_t)
        self.register_buffer("half_range", 0.5 * (high_t - low_t))

    @property
    def baked_in(self) -> list[str]:
        features = ["feature_extractor"] if self.features is not None else []
        return [*super().baked_in, *features, "deterministic_head", "tanh_squash", "action_rescale"]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self._normalized(obs)
        if self.features is not None:
            x = self.features(x)
        mean = self._float32(self.net(x)[0])
        return self.low + (torch.tanh(mean) + 1.0) * self.half_range


class ArgmaxPolicy(DeployedPolicy):
    """Discrete deployed policy (DQN, PPO with a categorical head): ``start + argmax(scores)``.

    ``net`` maps the float32 observation to Q-values or logits ``[batch, n]`` (image encoders
    scale uint8 pixels by 1/255 themselves). If it returns a tuple (e.g. PPO's ``(logits,
    value)``), element ``select`` holds the scores. The action is int64.
    """

    discrete = True

    def __init__(self, net: nn.Module, normalizer: ObsNormalizer | None = None, select: int = 0,
                 start: int = 0) -> None:
        super().__init__(net, normalizer)
        self.select = int(select)
        self.start = int(start)

    @property
    def baked_in(self) -> list[str]:
        steps = [*super().baked_in, "argmax"]
        return [*steps, "action_offset"] if self.start else steps

    def scores(self, obs: torch.Tensor) -> torch.Tensor:
        """Float32 Q-values or logits ``[batch, n]`` whose argmax is the action."""
        out = self.net(self._normalized(obs))
        if isinstance(out, (tuple, list)):
            out = out[self.select]
        return self._float32(out)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        action = torch.argmax(self.scores(obs), dim=-1)
        return action + self.start if self.start else action


def _cast_to_weights(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: cast floating inputs to the dtype of ``module``'s own weights."""
    dtype = next(module.parameters(recurse=False)).dtype
    return tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() and a.dtype != dtype else a
                 for a in args)

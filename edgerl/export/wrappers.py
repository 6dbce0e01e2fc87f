"""What gets exported: a policy module mapping a raw observation batch to environment actions.

Each wrapper is the deployed policy in one ``forward`` (in the manner of rsl_rl's ``as_onnx()``):
observation -> normaliser -> network -> deterministic head -> squash -> rescale. The exported
graph therefore emits actions the environment accepts, with nothing left for the robot to do.

The wrappers can also run their network in float16 (:meth:`DeployedPolicy.to_fp16`): the
observation and the action stay float32, and Casts at the network's boundaries carry the
precision change, which is what strongly typed TensorRT (>= 11) needs to build FP16 kernels.
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
        self.eval().requires_grad_(False)

    @property
    def baked_in(self) -> list[str]:
        """Steps the exported graph performs, in order (recorded in ``contract.json``)."""
        return ["observation_normalizer"] if self.normalizer is not None else []

    @property
    def precision(self) -> str:
        """``fp32`` or ``fp16`` (dtype of the network's weights)."""
        return "fp16" if self.compute_dtype == torch.float16 else "fp32"

    def to_fp16(self) -> DeployedPolicy:
        """A copy whose network computes in float16; normaliser, input and output stay float32."""
        half = copy.deepcopy(self)
        half.net.half()
        half.compute_dtype = torch.float16
        return half

    def _features(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observation -> network input (float32 normalised, then the network's dtype)."""
        x = obs if obs.dtype == torch.float32 else obs.to(torch.float32)
        if self.normalizer is not None:
            x = self.normalizer(x)
        return x if self.compute_dtype == torch.float32 else x.to(self.compute_dtype)

    @staticmethod
    def _float32(t: torch.Tensor) -> torch.Tensor:
        return t if t.dtype == torch.float32 else t.to(torch.float32)


class SquashedGaussianPolicy(DeployedPolicy):
    """SAC's deployed policy: ``low + (tanh(mean(normalise(obs))) + 1) / 2 * (high - low)``.

    ``net`` is a :class:`~edgerl.nets.mlp.SquashedGaussianActor` (its forward returns
    ``(mean, log_std)``; only the mean is used, so ``log_std`` is pruned from the graph).
    """

    def __init__(self, actor: nn.Module, normalizer: ObsNormalizer | None,
                 low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray) -> None:
        super().__init__(actor, normalizer)
        low_t = torch.as_tensor(np.asarray(low, dtype=np.float32))
        high_t = torch.as_tensor(np.asarray(high, dtype=np.float32))
        self.register_buffer("low", low_t)
        self.register_buffer("half_range", 0.5 * (high_t - low_t))

    @property
    def baked_in(self) -> list[str]:
        return [*super().baked_in, "deterministic_head", "tanh_squash", "action_rescale"]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        mean = self._float32(self.net(self._features(obs))[0])
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
        out = self.net(self._features(obs))
        if isinstance(out, (tuple, list)):
            out = out[self.select]
        return self._float32(out)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        action = torch.argmax(self.scores(obs), dim=-1)
        return action + self.start if self.start else action

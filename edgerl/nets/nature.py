"""Nature-DQN CNN (Mnih et al. 2015), the reference encoder for image agents: three convs
(8x8/4, 4x4/2, 3x3/1) -> flatten -> Linear(512), with a width factor on the conv channels.

Per-layer widths in the spec (``channels`` per conv, ``hidden`` per Linear), so a pruned
encoder is rebuilt from its spec alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from edgerl.errors import ConfigError
from edgerl.nets.impala import scale_uint8
from edgerl.nets.mlp import mlp_trunk, trunk_widths
from edgerl.nets.registry import register_net

NATURE_BASE = (32, 64, 64)
"""Conv widths at width factor 1."""
KERNELS = ((8, 4), (4, 2), (3, 1))
"""(kernel, stride) of the three convs."""


def nature_channels(width: float) -> list[int]:
    """Conv widths for width factor ``width``."""
    if width <= 0:
        raise ConfigError(f"--width must be positive, got {width}")
    return [max(1, round(c * width)) for c in NATURE_BASE]


@register_net("nature_cnn")
class NatureEncoder(nn.Module):
    """Nature CNN encoder: uint8 ``[B, C, H, W]`` -> features ``[B, hidden[-1]]``."""

    def __init__(self, in_shape: Sequence[int], channels: Sequence[int] = NATURE_BASE,
                 hidden: Sequence[int] = (512,)):
        super().__init__()
        self.in_shape = [int(s) for s in in_shape]
        if len(self.in_shape) != 3:
            raise ConfigError(f"the Nature CNN needs channel-first image observations [C, H, W], got {self.in_shape}")
        layers: list[nn.Module] = []
        c, (h, w) = self.in_shape[0], self.in_shape[1:]
        for width, (k, s) in zip(channels, KERNELS, strict=True):
            layers += [nn.Conv2d(c, int(width), k, stride=s), nn.ReLU()]
            c, h, w = int(width), (h - k) // s + 1, (w - k) // s + 1
        if h < 1 or w < 1:
            raise ConfigError(f"the Nature CNN needs images of at least 36x36, got {self.in_shape[1:]}; "
                              "use --net impala or a larger --frame-size")
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.fc = mlp_trunk(c * h * w, hidden)
        self._cells = h * w

    @property
    def out_dim(self) -> int:
        """Width of the features; follows pruning (the last Linear, else the flattened convs)."""
        linears = [m for m in self.fc.modules() if isinstance(m, nn.Linear)]
        if linears:
            return linears[-1].out_features
        return [m for m in self.convs if isinstance(m, nn.Conv2d)][-1].out_channels * self._cells

    def spec(self) -> dict[str, Any]:
        convs = [m.out_channels for m in self.convs if isinstance(m, nn.Conv2d)]
        return {"in_shape": list(self.in_shape), "channels": convs, "hidden": trunk_widths(self.fc)}

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(scale_uint8(obs)))

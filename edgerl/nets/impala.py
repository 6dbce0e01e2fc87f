"""Impala-CNN (Espeholt et al. 2018) with a width factor tau, its "Impoola" variant (global
average pooling before the Linear), and the image agent networks built on any image encoder.

Widths are per layer, so a group-pruned network is rebuilt from its spec alone:
``channels[i] = [stream, inner_0, inner_1]`` gives stage ``i``'s stream width (its first conv's
outputs, shared by the residual additions) and each residual block's inner conv width. The
coupled groups torch-pruning finds are exactly these numbers plus the hidden Linear widths.

The agent networks (``ActorCriticCNN`` for PPO, ``QNetworkCNN`` for DQN) wrap an encoder spec
(``impala_cnn`` or ``nature_cnn``) with output heads that are never pruned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from edgerl.errors import ConfigError
from edgerl.nets.mlp import mlp_trunk, trunk_widths
from edgerl.nets.registry import build_net, net_spec, register_net

IMPALA_BASE = (16, 32, 32)
"""Stream widths of the three stages at tau = 1."""


def impala_channels(width: float, base: Sequence[int] = IMPALA_BASE, blocks: int = 2) -> list[list[int]]:
    """Per-stage widths ``[stream, inner_0, .., inner_{blocks-1}]`` for width factor ``width``."""
    if width <= 0:
        raise ConfigError(f"--width must be positive, got {width}")
    return [[max(1, round(c * width))] * (1 + blocks) for c in base]


def scale_uint8(obs: torch.Tensor) -> torch.Tensor:
    """uint8 pixels [0, 255] -> float [0, 1] (inside the net, so exports take raw frames).

    The result is channels-last in memory: CPU convolutions and max-pooling run about 1.5x
    faster on it (same values, same shape).
    """
    return (obs.to(torch.float32) * (1.0 / 255.0)).contiguous(memory_format=torch.channels_last)


class ResidualBlock(nn.Module):
    """x + conv1(relu(conv0(relu(x)))), 3x3 convs; ``inner`` is conv0's output width."""

    def __init__(self, channels: int, inner: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, inner, 3, padding=1)
        self.conv1 = nn.Conv2d(inner, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ImpalaStage(nn.Module):
    """conv3x3 -> maxpool(3, stride 2, padding 1) -> residual blocks."""

    def __init__(self, in_channels: int, widths: Sequence[int]):
        super().__init__()
        stream = int(widths[0])
        self.conv = nn.Conv2d(in_channels, stream, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.blocks = nn.Sequential(*(ResidualBlock(stream, int(w)) for w in widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.pool(self.conv(x)))

    def widths(self) -> list[int]:
        return [self.conv.out_channels, *(b.conv0.out_channels for b in self.blocks)]


@register_net("impala_cnn")
class ImpalaEncoder(nn.Module):
    """Impala-CNN encoder: uint8 ``[B, C, H, W]`` -> features ``[B, hidden[-1]]``.

    Args:
        in_shape: observation shape ``[C, H, W]`` (channel first).
        channels: per stage ``[stream, inner_0, inner_1, ...]`` (see :func:`impala_channels`).
        hidden: widths of the Linear layers after ReLU -> (pool) -> flatten.
        impoola: global average pooling before the Linear (the "Impoola" variant).
    """

    def __init__(self, in_shape: Sequence[int], channels: Sequence[Sequence[int]],
                 hidden: Sequence[int] = (256,), impoola: bool = False):
        super().__init__()
        self.in_shape = [int(s) for s in in_shape]
        if len(self.in_shape) != 3:
            raise ConfigError(f"Impala-CNN needs channel-first image observations [C, H, W], got {self.in_shape}")
        self.impoola = bool(impoola)
        stages, c = [], self.in_shape[0]
        h, w = self.in_shape[1:]
        for widths in channels:
            stages.append(ImpalaStage(c, widths))
            c = int(widths[0])
            h, w = math.ceil(h / 2), math.ceil(w / 2)  # maxpool(3, 2, padding 1)
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1) if self.impoola else nn.Identity()
        flat = c if self.impoola else c * h * w
        self.fc = mlp_trunk(flat, hidden)
        self._cells = 1 if self.impoola else h * w

    @property
    def out_dim(self) -> int:
        """Width of the features; follows pruning (the last Linear, else the flattened stream)."""
        linears = [m for m in self.fc.modules() if isinstance(m, nn.Linear)]
        if linears:
            return linears[-1].out_features
        c = self.stages[-1].widths()[0] if len(self.stages) else self.in_shape[0]
        return int(c) * self._cells

    def spec(self) -> dict[str, Any]:
        return {"in_shape": list(self.in_shape), "channels": [s.widths() for s in self.stages],
                "hidden": trunk_widths(self.fc), "impoola": self.impoola}

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.stages(scale_uint8(obs))
        x = self.pool(torch.relu(x)).flatten(1)
        return self.fc(x)


def image_encoder_spec(net: str, in_shape: Sequence[int], width: float, hidden: Sequence[int],
                       impoola: bool = False) -> dict[str, Any]:
    """Spec of an image encoder by name (``impala`` or ``nature``) at width factor ``width``."""
    if net == "impala":
        kwargs = {"in_shape": list(in_shape), "channels": impala_channels(width),
                  "hidden": list(hidden), "impoola": impoola}
        return {"type": "impala_cnn", "kwargs": kwargs}
    if net == "nature":
        if impoola:
            raise ConfigError("--impoola applies to --net impala only; drop it or use --net impala")
        from edgerl.nets.nature import nature_channels

        kwargs = {"in_shape": list(in_shape), "channels": nature_channels(width), "hidden": list(hidden)}
        return {"type": "nature_cnn", "kwargs": kwargs}
    raise ConfigError(f"unknown --net {net!r}; choose impala or nature")


def _init_linear(layer: nn.Linear, std: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, std)
    nn.init.zeros_(layer.bias)
    return layer


@register_net("actor_critic_cnn")
class ActorCriticCNN(nn.Module):
    """PPO network: one image encoder shared by the policy logits and the value head."""

    def __init__(self, encoder: dict[str, Any], n_actions: int):
        super().__init__()
        self.encoder = build_net(encoder)
        self.n_actions = int(n_actions)
        self.actor = _init_linear(nn.Linear(self.encoder.out_dim, self.n_actions), 0.01)
        self.critic = _init_linear(nn.Linear(self.encoder.out_dim, 1), 1.0)

    def spec(self) -> dict[str, Any]:
        return {"encoder": net_spec(self.encoder), "n_actions": self.n_actions}

    def heads(self) -> list[nn.Module]:
        """Layers whose output width is fixed by the task (never pruned)."""
        return [self.actor, self.critic]

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        """uint8 frames to trace the network with (pruning, compaction)."""
        return (torch.zeros(batch, *self.encoder.in_shape, dtype=torch.uint8),)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy logits ``[B, n_actions]`` and state value ``[B]``."""
        h = self.encoder(obs)
        return self.actor(h), self.critic(h).squeeze(-1)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.encoder(obs)).squeeze(-1)

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """Most likely action (int64): what is deployed."""
        return self.actor(self.encoder(obs)).argmax(-1)


@register_net("q_cnn")
class QNetworkCNN(nn.Module):
    """DQN network: image encoder -> one Q-value per action."""

    def __init__(self, encoder: dict[str, Any], n_actions: int):
        super().__init__()
        self.encoder = build_net(encoder)
        self.n_actions = int(n_actions)
        self.q = nn.Linear(self.encoder.out_dim, self.n_actions)

    def spec(self) -> dict[str, Any]:
        return {"encoder": net_spec(self.encoder), "n_actions": self.n_actions}

    def heads(self) -> list[nn.Module]:
        """Layers whose output width is fixed by the task (never pruned)."""
        return [self.q]

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        """uint8 frames to trace the network with (pruning, compaction)."""
        return (torch.zeros(batch, *self.encoder.in_shape, dtype=torch.uint8),)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values ``[B, n_actions]``."""
        return self.q(self.encoder(obs))

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """Greedy action (int64): what is deployed."""
        return self(obs).argmax(-1)

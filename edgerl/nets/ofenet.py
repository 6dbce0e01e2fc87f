"""OFENet (Ota et al. 2020, "Can Increasing Input Dimensionality Improve Deep Reinforcement
Learning?"): a DenseNet feature extractor trained to predict the next observation, whose features
SAC reads instead of the raw observation.

- State block: ``phi(s)``: L layers, each Dense -> BatchNorm -> swish, whose output is concatenated
  to its input, so ``phi(s) = [s, h1, ..., hL]``.
- State-action block: ``phi(s, a)``: the action is concatenated to ``phi(s)``, then L more layers.
- Head: a Linear on ``phi(s, a)`` predicting the first ``target_dim`` entries of the next
  observation (MSE). Only the state block runs on the robot (it feeds the actor).

Per-layer widths live in the spec, so a pruned OFENet is rebuilt from its spec alone. The raw
observation and action pass through :class:`~edgerl.prune.InputScale` before any concat:
torch-pruning mis-maps a raw input fed to ``torch.cat`` (upstream issue #481).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from edgerl.nets.mlp import mlp_trunk, trunk_widths
from edgerl.nets.registry import register_net
from edgerl.prune import InputScale

BN_MOMENTUM = 0.01
"""BatchNorm running-statistics momentum: Keras' default (0.99 in its convention), as OFENet used."""


class DenseLayer(nn.Module):
    """One OFENet layer: Linear -> BatchNorm1d -> swish (its output is concatenated by the block).

    ``batchnorm=False`` (a deployed layer whose BatchNorm was folded into the Linear) keeps the
    ``bn`` slot as an identity, so parameter names stay those of the trained layer.
    """

    def __init__(self, in_dim: int, width: int, batchnorm: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(int(in_dim), int(width))
        self.bn = nn.BatchNorm1d(int(width), momentum=BN_MOMENTUM) if batchnorm else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.fc(x)))

    @torch.no_grad()
    def fold_batchnorm(self) -> None:
        """Fold the BatchNorm's running statistics and affine map into the Linear (eval-mode
        output unchanged)."""
        bn = self.bn
        if not isinstance(bn, nn.BatchNorm1d):
            return
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        self.fc.weight.mul_(scale[:, None])
        self.fc.bias.copy_((self.fc.bias - bn.running_mean) * scale + bn.bias)
        self.bn = nn.Identity()


def _dense_stack(in_dim: int, widths: Sequence[int], batchnorm: bool = True) -> tuple[nn.ModuleList, int]:
    layers, d = [], int(in_dim)
    for w in widths:
        layers.append(DenseLayer(d, int(w), batchnorm))
        d += int(w)
    return nn.ModuleList(layers), d


def _stack_sites(prefix: str, layers: nn.ModuleList) -> dict[str, str]:
    return {f"{prefix}.{i}.fc": f"{prefix}.{i}.act" for i in range(len(layers))}


@register_net("ofenet_state")
class OFEStateBlock(nn.Module):
    """OFENet's state block ``obs -> phi(s) = [obs, h1, ..., hL]``: the part that is deployed.

    Args:
        obs_dim: observation size (after the agent's normaliser).
        widths: width of each dense layer.
        batchnorm: False for a deployed block whose BatchNorms were folded (:meth:`fold_for_deploy`).
    """

    def __init__(self, obs_dim: int, widths: Sequence[int], batchnorm: bool = True) -> None:
        super().__init__()
        self.obs_dim = int(obs_dim)
        self.batchnorm = bool(batchnorm)
        self.obs_in = InputScale(self.obs_dim)
        self.layers, _ = _dense_stack(self.obs_dim, widths, self.batchnorm)

    @property
    def out_dim(self) -> int:
        """Size of ``phi(s)`` at the current widths."""
        return self.obs_dim + sum(layer.fc.out_features for layer in self.layers)

    def spec(self) -> dict[str, Any]:
        return {"obs_dim": self.obs_dim, "widths": [layer.fc.out_features for layer in self.layers],
                "batchnorm": self.batchnorm}

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        """Inputs to trace the network with (pruning, compaction)."""
        return (torch.zeros(batch, self.obs_dim),)

    def fold_for_deploy(self) -> None:
        """Fold every BatchNorm into its Linear (what ``edgerl compact`` calls): the eval-mode
        function is unchanged and the deployed block has no normalisation layers."""
        for layer in self.layers:
            layer.fold_batchnorm()
        self.batchnorm = False

    def gate_sites(self) -> dict[str, str]:
        """Gated unit groups: Linear whose outputs are the units -> module whose output is gated."""
        return _stack_sites("layers", self.layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.obs_in(obs)
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=-1)
        return x


@register_net("ofenet")
class OFENet(nn.Module):
    """State block, state-action block and the next-observation head.

    Args:
        obs_dim: observation size.
        act_dim: action size.
        state_widths: width of each layer of the state block.
        action_widths: width of each layer of the state-action block.
        target_dim: how many leading entries of the next observation the head predicts
            (None or 0: all of them).
    """

    def __init__(self, obs_dim: int, act_dim: int, state_widths: Sequence[int],
                 action_widths: Sequence[int], target_dim: int | None = None) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.target_dim = int(target_dim) if target_dim else self.obs_dim
        if not 0 < self.target_dim <= self.obs_dim:
            raise ValueError(f"OFENet target_dim must be in 1..{self.obs_dim}, got {target_dim}")
        self.state_block = OFEStateBlock(self.obs_dim, state_widths)
        self.act_in = InputScale(self.act_dim)
        self.action_layers, d = _dense_stack(self.state_block.out_dim + self.act_dim, action_widths)
        self.head = nn.Linear(d, self.target_dim)

    @property
    def state_dim(self) -> int:
        """Size of ``phi(s)`` (what the actor reads)."""
        return self.state_block.out_dim

    @property
    def state_action_dim(self) -> int:
        """Size of ``phi(s, a)`` (what the critics read)."""
        return self.state_dim + self.act_dim + sum(layer.fc.out_features for layer in self.action_layers)

    def spec(self) -> dict[str, Any]:
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "state_widths": self.state_block.spec()["widths"],
            "action_widths": [layer.fc.out_features for layer in self.action_layers],
            "target_dim": self.target_dim,
        }

    def heads(self) -> list[nn.Module]:
        """Layers whose output width is fixed (the prediction head)."""
        return [self.head]

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        """Inputs to trace the network with (pruning, compaction)."""
        return (torch.zeros(batch, self.obs_dim), torch.zeros(batch, self.act_dim))

    def gate_sites(self) -> dict[str, str]:
        """Gated unit groups of both blocks (see :meth:`OFEStateBlock.gate_sites`)."""
        state = {f"state_block.{k}": f"state_block.{v}" for k, v in self.state_block.gate_sites().items()}
        return {**state, **_stack_sites("action_layers", self.action_layers)}

    def state_features(self, obs: torch.Tensor) -> torch.Tensor:
        """``phi(s)``."""
        return self.state_block(obs)

    def action_features(self, phi_s: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``phi(s, a)`` from ``phi(s)`` (so the state block runs once for several actions)."""
        x = torch.cat([phi_s, self.act_in(act)], dim=-1)
        for layer in self.action_layers:
            x = torch.cat([x, layer(x)], dim=-1)
        return x

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Predicted next observation (its first ``target_dim`` entries)."""
        return self.head(self.action_features(self.state_features(obs), act))


@register_net("q_features")
class FeatureQNetwork(nn.Module):
    """Q(phi(s, a)): an MLP critic reading OFENet's state-action features (the action is inside
    them, as in the OFENet paper)."""

    def __init__(self, in_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        if len(hidden) < 1:
            raise ValueError("FeatureQNetwork needs at least one hidden layer")
        self.in_dim = int(in_dim)
        self.trunk = mlp_trunk(self.in_dim, hidden)
        self.q = nn.Linear(int(hidden[-1]), 1)

    def spec(self) -> dict[str, Any]:
        # The input width shrinks when OFENet units it reads are pruned: read it from the layer.
        return {"in_dim": self.trunk[0].in_features, "hidden": trunk_widths(self.trunk)}

    def heads(self) -> list[nn.Module]:
        return [self.q]

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.zeros(batch, self.trunk[0].in_features),)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.q(self.trunk(features)).squeeze(-1)


def ofenet_widths(layers: int, units: int, explicit: Sequence[int] = ()) -> list[int]:
    """Per-layer widths of a block: ``explicit`` if given, else ``layers`` x ``units``."""
    return [int(w) for w in explicit] if len(explicit) else [int(units)] * int(layers)

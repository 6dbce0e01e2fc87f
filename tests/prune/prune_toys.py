"""Small networks with the structures edgerl prunes, and the zeroed-dense reference.

Each `Toy` bundles a constructor, example inputs, the kept heads and the groups we expect
(written by hand, so the grouping torch-pruning finds is checked, not trusted).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgerl.prune import InputScale

OBS, ACT = 7, 3


class MLP(nn.Module):
    """obs -> h -> h -> act, optionally with LayerNorm on the input."""

    def __init__(
        self, hidden: Sequence[int] = (24, 20), layernorm: bool = False, obs: int = OBS
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(obs) if layernorm else nn.Identity()
        self.fc1 = nn.Linear(obs, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.out = nn.Linear(hidden[1], ACT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(self.norm(x)))
        return self.out(F.relu(self.fc2(x)))


class DenseLayer(nn.Module):
    """OFENet unit: Linear -> BatchNorm1d -> SiLU."""

    def __init__(self, d_in: int, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d_in, width)
        self.bn = nn.BatchNorm1d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.bn(self.fc(x)))


class DenseNet(nn.Module):
    """OFENet-like state block: each layer's output is concatenated to its input; linear head."""

    def __init__(self, widths: Sequence[int] = (6, 5, 4), raw: bool = False) -> None:
        super().__init__()
        self.inp = nn.Identity() if raw else InputScale(OBS)
        d, layers = OBS, []
        for w in widths:
            layers.append(DenseLayer(d, w))
            d += w
        self.layers = nn.ModuleList(layers)
        self.head = nn.Linear(d, OBS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=-1)
        return self.head(x)


class QNet(nn.Module):
    def __init__(self, d_in: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.out = nn.Linear(hidden[1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x)))))


class TwinQ(nn.Module):
    """SAC critic: two Q networks on cat(obs_normed, act_scaled)."""

    def __init__(self, hidden: Sequence[int] = (16, 12), scaled: bool = True) -> None:
        super().__init__()
        self.register_buffer("obs_mean", torch.zeros(OBS))
        self.register_buffer("obs_std", torch.ones(OBS))
        self.obs_scale = InputScale(OBS) if scaled else nn.Identity()
        self.act_scale = InputScale(ACT) if scaled else nn.Identity()
        self.q1 = QNet(OBS + ACT, hidden)
        self.q2 = QNet(OBS + ACT, hidden)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obs_normed = self.obs_scale((obs - self.obs_mean) / self.obs_std)
        x = torch.cat([obs_normed, self.act_scale(act)], dim=-1)
        return self.q1(x), self.q2(x)


class D2RLQ(nn.Module):
    """Raw input concatenated with hidden features (D2RL style); `scaled` applies the fix."""

    def __init__(self, scaled: bool, obs: int = OBS) -> None:
        super().__init__()
        self.scale = InputScale(obs) if scaled else nn.Identity()
        self.fc1 = nn.Linear(obs, 10)
        self.fc2 = nn.Linear(obs + 10, 8)
        self.out = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.scale(x)
        h = F.relu(self.fc1(x))
        return self.out(F.relu(self.fc2(torch.cat([x, h], dim=-1))))


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Impala(nn.Module):
    """One Impala stage (conv -> maxpool -> 2 residual blocks) -> flatten -> linear -> pi, v."""

    def __init__(self, c: int = 8, size: int = 12) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.res0 = ResBlock(c)
        self.res1 = ResBlock(c)
        self.fc = nn.Linear(c * (size // 2) ** 2, 16)
        self.pi = nn.Linear(16, 4)
        self.v = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.res1(self.res0(self.pool(self.conv(x))))
        h = F.relu(self.fc(torch.flatten(F.relu(x), 1)))
        return self.pi(h), self.v(h)


class SharedEncoder(nn.Module):
    """Shared MLP encoder with a policy head and a value head."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(OBS, 20), nn.Tanh(), nn.Linear(20, 18), nn.ReLU())
        self.pi = nn.Linear(18, ACT)
        self.v = nn.Linear(18, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc(x)
        return self.pi(h), self.v(h)


@dataclass
class Toy:
    name: str
    make: Callable[[], nn.Module]
    inputs: Callable[[int], Any]  # batch size -> example inputs
    keep: tuple[str, ...]
    groups: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)  # key -> (outs, ins)


def _obs(b: int) -> torch.Tensor:
    return torch.randn(b, OBS)


def _obs_act(b: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(b, OBS), torch.randn(b, ACT)


TOYS = [
    Toy("mlp", MLP, _obs, ("out",), {"fc1": ({"fc1"}, {"fc2"}), "fc2": ({"fc2"}, {"out"})}),
    Toy(
        "mlp_layernorm",
        lambda: MLP(layernorm=True),
        _obs,
        ("out",),
        {"fc1": ({"fc1"}, {"fc2"}), "fc2": ({"fc2"}, {"out"})},
    ),
    Toy(
        "densenet",
        DenseNet,
        _obs,
        ("head",),
        {
            "layers.0.fc": ({"layers.0.fc", "layers.0.bn"}, {"layers.1.fc", "layers.2.fc", "head"}),
            "layers.1.fc": ({"layers.1.fc", "layers.1.bn"}, {"layers.2.fc", "head"}),
            "layers.2.fc": ({"layers.2.fc", "layers.2.bn"}, {"head"}),
        },
    ),
    Toy(
        "twin_q",
        TwinQ,
        _obs_act,
        ("q1.out", "q2.out"),
        {
            "q1.fc1": ({"q1.fc1"}, {"q1.fc2"}),
            "q1.fc2": ({"q1.fc2"}, {"q1.out"}),
            "q2.fc1": ({"q2.fc1"}, {"q2.fc2"}),
            "q2.fc2": ({"q2.fc2"}, {"q2.out"}),
        },
    ),
    Toy(
        "twin_q_raw_input_cat",
        lambda: TwinQ(scaled=False),
        _obs_act,
        ("q1.out", "q2.out"),
        {
            "q1.fc1": ({"q1.fc1"}, {"q1.fc2"}),
            "q1.fc2": ({"q1.fc2"}, {"q1.out"}),
            "q2.fc1": ({"q2.fc1"}, {"q2.fc2"}),
            "q2.fc2": ({"q2.fc2"}, {"q2.out"}),
        },
    ),
    Toy(
        "d2rl_scaled",
        lambda: D2RLQ(scaled=True),
        _obs,
        ("out",),
        {"fc1": ({"fc1"}, {"fc2"}), "fc2": ({"fc2"}, {"out"})},
    ),
    Toy(  # a 1-feature input (a 1-D action): torch-pruning leaves a size-1 free parameter unsized
        "d2rl_scaled_1d",
        lambda: D2RLQ(scaled=True, obs=1),
        lambda b: torch.randn(b, 1),
        ("out",),
        {"fc1": ({"fc1"}, {"fc2"}), "fc2": ({"fc2"}, {"out"})},
    ),
    Toy(
        "impala",
        Impala,
        lambda b: torch.randn(b, 3, 12, 12),
        ("pi", "v"),
        {
            "conv": ({"conv", "res0.conv2", "res1.conv2"}, {"res0.conv1", "res1.conv1", "fc"}),
            "res0.conv1": ({"res0.conv1"}, {"res0.conv2"}),
            "res1.conv1": ({"res1.conv1"}, {"res1.conv2"}),
            "fc": ({"fc"}, {"pi", "v"}),
        },
    ),
    Toy(
        "shared_encoder",
        SharedEncoder,
        _obs,
        ("pi", "v"),
        {"enc.0": ({"enc.0"}, {"enc.2"}), "enc.2": ({"enc.2"}, {"pi", "v"})},
    ),
]


# edgerl's own networks (the ones `edgerl train` prunes) go through the same checks.
from edgerl.nets.mlp import QNetwork, SquashedGaussianActor  # noqa: E402

TOYS += [
    Toy(
        "edgerl_sac_actor",
        lambda: SquashedGaussianActor(OBS, ACT, [24, 20]),
        _obs,
        ("mean", "log_std"),
        {"trunk.0": ({"trunk.0"}, {"trunk.2"}), "trunk.2": ({"trunk.2"}, {"mean", "log_std"})},
    ),
    Toy(
        "edgerl_q_network",
        lambda: QNetwork(OBS, ACT, [24, 20]),
        _obs_act,
        ("q",),
        {"obs_in": ({"obs_in", "act_in"}, {"trunk.1"}), "trunk.1": ({"trunk.1"}, {"q"})},
    ),
]


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN/LN/InputScale parameters and BN running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.LayerNorm, InputScale)):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(0.5 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return model


def zeroed_copy(model: nn.Module, out_layers: Sequence[str], idxs: Sequence[int]) -> nn.Module:
    """Dense copy whose channels `idxs` output exactly 0.

    Zeroing the weight rows and bias of the producing Linear/Conv layers, and gamma and beta of
    the BatchNorm after them, makes those units output 0 in train and eval mode; ReLU, SiLU,
    Tanh, max-pooling and residual sums of zeros stay 0, so their consumers receive exactly what
    the pruned network computes without the channels.
    """
    ref = copy.deepcopy(model)
    modules = dict(ref.named_modules())
    with torch.no_grad():
        for name in out_layers:
            m = modules[name]
            m.weight[list(idxs)] = 0
            if m.bias is not None:
                m.bias[list(idxs)] = 0
    return ref


def outputs(model: nn.Module, inputs: Any) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    return list(out) if isinstance(out, tuple) else [out]

"""MLP networks for state-based control: the SAC actor and Q-network, and the observation
normaliser they read through.

Widths are per layer (``hidden=[256, 256]``), so a network pruned to ``[201, 97]`` is rebuilt
from its spec alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from edgerl.nets.registry import register_net

LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "selu": nn.SELU, "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU, "silu": nn.SiLU, "softplus": nn.Softplus, "sigmoid": nn.Sigmoid, "mish": nn.Mish,
    "celu": nn.CELU, "identity": nn.Identity,
}
"""Hidden-layer activations by name (the names a net spec records; defaults: torch's)."""

def activation_class(name: str) -> type[nn.Module]:
    """The activation module class called ``name`` (a key of :data:`ACTIVATIONS`)."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}") from None


def mlp_trunk(in_dim: int, hidden: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear -> activation stack; ``hidden`` gives each layer's width."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, int(width)), activation()]
        in_dim = int(width)
    return nn.Sequential(*layers)


def trunk_widths(trunk: nn.Sequential) -> list[int]:
    """Current output widths of the Linear layers of a trunk."""
    return [m.out_features for m in trunk if isinstance(m, nn.Linear)]


class ObsNormalizer(nn.Module):
    """Running mean/variance observation normaliser (Welford/Chan merge), clipped to +-clip.

    The statistics are buffers, so they travel in the state dict and are baked into exports.
    ``enabled=False`` makes it the identity while keeping the same interface. An infinite
    ``clip`` clips nothing (rsl_rl's normaliser, imported by ``edgerl import``).
    """

    def __init__(self, shape: Sequence[int], clip: float = 10.0, eps: float = 1e-8, enabled: bool = True):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.clip = float(clip)
        self.eps = float(eps)
        self.enabled = bool(enabled)
        self.register_buffer("mean", torch.zeros(self.shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(self.shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Merge a batch ``[n, *shape]`` of raw observations into the running statistics."""
        if not self.enabled:
            return
        batch = batch.to(torch.float64).reshape(-1, *self.shape)
        n = batch.shape[0]
        b_mean = batch.mean(0)
        b_var = batch.var(0, unbiased=False)
        delta = b_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        m2 = self.var * self.count + b_var * n + delta.pow(2) * self.count * n / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return obs
        mean = self.mean.to(obs.dtype)
        std = torch.sqrt(self.var + self.eps).to(obs.dtype)
        x = (obs - mean) / std
        return x if math.isinf(self.clip) else torch.clamp(x, -self.clip, self.clip)


@register_net("sac_actor")
class SquashedGaussianActor(nn.Module):
    """Tanh-squashed diagonal Gaussian policy: trunk -> (mean, log_std) heads.

    Works in the squashed space [-1, 1]; rescaling to the env's bounds happens outside (in the
    agent and in the exported graph), so the same actor serves any action bounds.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], activation: str = "relu"):
        super().__init__()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.activation = str(activation)
        self.trunk = mlp_trunk(self.obs_dim, hidden, activation_class(self.activation))
        last = int(hidden[-1]) if len(hidden) else self.obs_dim
        self.mean = nn.Linear(last, self.act_dim)
        self.log_std = nn.Linear(last, self.act_dim)

    def spec(self) -> dict:
        # The input width is read from the first layer: it shrinks when units of a feature
        # extractor feeding the actor (OFENet) are pruned.
        obs_dim = self.trunk[0].in_features if len(self.trunk) else self.mean.in_features
        spec = {"obs_dim": obs_dim, "act_dim": self.act_dim, "hidden": trunk_widths(self.trunk)}
        if self.activation != "relu":  # imported actors (edgerl import); edgerl's own SAC uses ReLU
            spec["activation"] = self.activation
        return spec

    def unit_activation(self) -> nn.Module:
        """The hidden activation, for folding the constant output of dead units."""
        return activation_class(self.activation)()

    def heads(self) -> list[nn.Module]:
        """Layers whose output width is fixed by the action space (never pruned)."""
        return [self.mean, self.log_std]

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        """Inputs to trace the network with (pruning, compaction)."""
        return (torch.zeros(batch, self.obs_dim),)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs)
        log_std = torch.tanh(self.log_std(h))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
        return self.mean(h), log_std

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised squashed sample and its log-probability (with the tanh correction)."""
        mean, log_std = self(obs)
        std = log_std.exp()
        u = mean + std * torch.randn_like(mean)
        a = torch.tanh(u)
        # log N(u; mean, std) - sum log(1 - tanh(u)^2), the latter in a stable form:
        # log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)).
        log_prob = (-0.5 * ((u - mean) / std).pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)
        return a, log_prob

    def deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """Mean action squashed to [-1, 1]: what is deployed."""
        return torch.tanh(self(obs)[0])


@register_net("q_mlp")
class QNetwork(nn.Module):
    """Q(s, a) MLP. The first layer is split into an observation and an action part whose outputs
    are added: the same function as a Linear on ``cat(obs, act)``, without feeding raw inputs to
    ``torch.cat`` (which torch-pruning mis-maps, upstream issue #481)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int]):
        super().__init__()
        if len(hidden) < 1:
            raise ValueError("QNetwork needs at least one hidden layer")
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.obs_in = nn.Linear(self.obs_dim, int(hidden[0]))
        self.act_in = nn.Linear(self.act_dim, int(hidden[0]), bias=False)
        self.trunk = nn.Sequential(nn.ReLU(), *mlp_trunk(int(hidden[0]), hidden[1:]))
        self.q = nn.Linear(int(hidden[-1]), 1)

    def spec(self) -> dict:
        return {
            "obs_dim": self.obs_in.in_features,
            "act_dim": self.act_in.in_features,
            "hidden": [self.obs_in.out_features, *trunk_widths(self.trunk)],
        }

    def heads(self) -> list[nn.Module]:
        return [self.q]

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.zeros(batch, self.obs_dim), torch.zeros(batch, self.act_dim))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.q(self.trunk(self.obs_in(obs) + self.act_in(act))).squeeze(-1)


@register_net("mlp")
class MLP(nn.Module):
    """Plain MLP ``in_dim -> hidden... -> out_dim`` with a named hidden activation and an optional
    output activation: the network of policies imported from other libraries (SB3, rsl_rl,
    CleanRL, skrl), whose activations (Tanh, ELU, ...) edgerl's own nets do not use."""

    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int], activation: str = "relu",
                 out_activation: str | None = None):
        super().__init__()
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.activation, self.out_activation = str(activation), out_activation
        self.trunk = mlp_trunk(self.in_dim, hidden, activation_class(self.activation))
        last = int(hidden[-1]) if len(hidden) else self.in_dim
        self.head = nn.Linear(last, self.out_dim)
        self.out = activation_class(out_activation)() if out_activation else nn.Identity()

    def spec(self) -> dict:
        return {"in_dim": self.trunk[0].in_features if len(self.trunk) else self.head.in_features,
                "out_dim": self.out_dim, "hidden": trunk_widths(self.trunk), "activation": self.activation,
                "out_activation": self.out_activation}

    def heads(self) -> list[nn.Module]:
        """The output layer (its width is fixed by the action space)."""
        return [self.head]

    def unit_activation(self) -> nn.Module:
        """The hidden activation, for folding the constant output of dead units."""
        return activation_class(self.activation)()

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.zeros(batch, self.spec()["in_dim"]),)

    def linear_layers(self) -> list[nn.Linear]:
        """Every Linear layer in order (trunk, then head): how imported weights are mapped."""
        return [*(m for m in self.trunk if isinstance(m, nn.Linear)), self.head]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.out(self.head(self.trunk(obs)))

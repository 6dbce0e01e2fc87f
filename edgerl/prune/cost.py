"""Expected parameter count C(theta) of networks whose hidden units carry Bernoulli gates.

Every unit i of a gated group s is present with probability theta[s][i], independently of all
other units. A Linear layer with output units O and input units I holds |O| x |I| weights and |O|
biases; a BatchNorm holds 2 |O| affine parameters. Because the units of different groups are
independent and a layer never reads its own outputs,

    E[weights] = E[|O|] * E[|I|] = (o_const + sum_{s in out} S_s) * (i_const + sum_{s in in} S_s),

with S_s = sum_i theta[s][i] the expected width of group s. So C is a polynomial in the gate
probabilities, linear in each one (it depends on a group's gates only through S_s), and exact:
at 0/1 thetas it is the parameter count of the network with the closed units removed.

The connectivity is read from the pruning graph, not written by hand: a group's ``in_layers``
are every layer that reads its units (in a DenseNet, every later layer and the head, because the
features are concatenated; with OFENet, also the first layers of the actor and critics). The
per-unit regulariser weight is therefore dC/dtheta[s][i] = dC/dS_s: the parameters one more
expected unit of group s costs, i.e. its own expected fan-in (+ bias and BatchNorm entries) plus
the expected width of every layer that reads it. In a DenseNet an early unit is read by more
layers but a late unit reads more (its fan-in holds every earlier output): with equal widths the
two balance exactly, and the weights then differ between blocks and networks (an OFENet state
unit is read by the action block, the head, the actor and both critics), and move as widths
shrink.

This module does not import torch-pruning: it consumes plain group descriptions (``key``,
``width``, ``out_layers``, ``in_layers``), e.g. :class:`edgerl.prune.graph.GroupInfo`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from edgerl.errors import ConfigError

COSTS = ("deploy", "train")
"""Values of ``PruneConfig.gate_cost``."""


class GroupLike(Protocol):
    """What the cost model needs of a group (``edgerl.prune.graph.GroupInfo`` has it)."""

    key: str
    width: int
    out_layers: tuple[str, ...]
    in_layers: tuple[str, ...]


@dataclass(frozen=True)
class Width:
    """An expected width: ``const`` ungated units plus the expected widths of gated groups."""

    const: int
    sites: tuple[str, ...] = ()

    def expected(self, widths: Mapping[str, float]) -> float:
        """``const + sum of widths[s]`` for the gated groups ``s``."""
        return self.const + sum(widths[s] for s in self.sites)


@dataclass(frozen=True)
class Term:
    """``count * E[out] * E[fan_in]`` parameters of one module (``fan_in`` None: 1)."""

    module: str
    count: int
    out: Width
    fan_in: Width | None = None

    def expected(self, widths: Mapping[str, float]) -> float:
        fan_in = 1.0 if self.fan_in is None else self.fan_in.expected(widths)
        return self.count * self.out.expected(widths) * fan_in


class CostModel:
    """C(theta) as a sum of :class:`Term` s; evaluated on expected widths ``S_s = sum theta[s]``.

    Args:
        terms: the parameter terms.
    """

    def __init__(self, terms: Iterable[Term]) -> None:
        self.terms = list(terms)
        self.sites = sorted({s for t in self.terms for w in (t.out, t.fan_in) if w for s in w.sites})

    @classmethod
    def from_groups(cls, model: nn.Module, groups: Iterable[GroupLike],
                    include: Callable[[str], bool] | None = None) -> CostModel:
        """The cost of ``model``'s parameters given its gated groups.

        Args:
            model: the network (module names are those of ``model.named_modules()``).
            groups: its gated groups; every other layer width is constant.
            include: which modules (by name) count; default all.

        Raises:
            ConfigError: a module with parameters the model cannot count (e.g. a Conv) is gated.
        """
        groups = list(groups)
        out_of = {name: g for g in groups for name in g.out_layers}
        terms: list[Term] = []
        for name, m in model.named_modules():
            if include is not None and not include(name):
                continue
            own = list(m.parameters(recurse=False))
            if not own:
                continue
            reads = [g for g in groups if name in g.in_layers]
            g_out = out_of.get(name)
            if isinstance(m, nn.Linear):
                out = Width(0, (g_out.key,)) if g_out else Width(m.out_features)
                const_in = m.in_features - sum(g.width for g in reads)
                terms.append(Term(name, 1, out, Width(const_in, tuple(g.key for g in reads))))
                if m.bias is not None:
                    terms.append(Term(name, 1, out))
            elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)) and not reads:
                per_unit = len(own)
                units = own[0].numel()
                out = Width(0, (g_out.key,)) if g_out else Width(units)
                terms.append(Term(name, per_unit, out))
            elif g_out is None and not reads:  # e.g. InputScale: its width is never gated
                terms.append(Term(name, sum(p.numel() for p in own), Width(1)))
            else:
                raise ConfigError(
                    f"the gate cost model cannot count the parameters of {name!r} ({type(m).__name__}) "
                    "whose width depends on gated units; gates support Linear/BatchNorm/LayerNorm networks"
                )
        return cls(terms)

    def expected(self, widths: Mapping[str, float]) -> float:
        """C at expected group widths ``widths[s] = sum_i theta[s][i]``."""
        return float(sum(t.expected(widths) for t in self.terms))

    def unit_weights(self, widths: Mapping[str, float]) -> dict[str, float]:
        """dC/dtheta[s][i] for every gated group s (the same for all units of a group).

        C is linear in each S_s (a layer never reads its own group), so the derivative is the
        sum over terms of ``count * (other factor)`` where S_s appears.
        """
        grad = dict.fromkeys(self.sites, 0.0)
        for t in self.terms:
            fan_in = 1.0 if t.fan_in is None else t.fan_in.expected(widths)
            out = t.out.expected(widths)
            for s in t.out.sites:
                grad[s] += t.count * fan_in
            if t.fan_in is not None:
                for s in t.fan_in.sites:
                    grad[s] += t.count * out
        return grad

    def by_module(self, widths: Mapping[str, float]) -> dict[str, float]:
        """Expected parameters of every counted module."""
        out: dict[str, float] = {}
        for t in self.terms:
            out[t.module] = out.get(t.module, 0.0) + t.expected(widths)
        return out


def expected_widths(theta: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``S_s = sum_i theta[s][i]`` as floats."""
    return {s: float(t.detach().sum()) for s, t in theta.items()}


def deploy_scope(name: str) -> bool:
    """Modules that run on the robot: OFENet's state block and the actor's trunk and mean head
    (the log-std head is dropped from exported graphs)."""
    return (name == "ofenet.state_block" or name.startswith("ofenet.state_block.")
            or (name.startswith("actor.") and not name.startswith("actor.log_std")))


def cost_scope(cost: str) -> Callable[[str], bool] | None:
    """The module filter of ``PruneConfig.gate_cost`` (None: every module of the online nets).

    Raises:
        ConfigError: unknown cost name.
    """
    if cost == "deploy":
        return deploy_scope
    if cost == "train":
        return None
    raise ConfigError(f"--gate-cost {cost!r}: choose one of {', '.join(COSTS)}")


def exact_count(model: nn.Module, include: Callable[[str], bool] | None = None) -> int:
    """Parameters of the modules of ``model`` that ``include`` selects (the reference C counts)."""
    total = 0
    for name, m in model.named_modules():
        if include is None or include(name):
            total += sum(p.numel() for p in m.parameters(recurse=False))
    return total


"""Removing units that cannot change a network's output, through the prune graph.

A unit (a channel of a coupled group) is dead when

- every producing Linear/Conv row of it is zero (masked weights): its output is the constant
  ``act(bias)``. The constant is folded into the biases of the Linear layers that read it and
  the unit removed; where a consumer is a Conv (padding makes the fold inexact) the unit is
  removed only if the constant is zero;
- or every consuming column of it is zero: nothing reads it.

The activation after a group is the net's ``unit_activation()`` (ReLU when the net does not
say). Whatever is removed, the caller checks the result against the original network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from edgerl.prune.graph import PruneGraph

ROOTS = (nn.Linear, nn.Conv2d, nn.Conv1d)


def _rows_zero(layer: nn.Module) -> torch.Tensor:
    w = layer.weight.detach()
    return (w.reshape(w.shape[0], -1) == 0).all(dim=1)


def _cols_zero(layer: nn.Module) -> torch.Tensor:
    w = layer.weight.detach().transpose(0, 1)
    return (w.reshape(w.shape[0], -1) == 0).all(dim=1)


@torch.no_grad()
def remove_dead_units(net: nn.Module, example_inputs: Any, heads: list[nn.Module],
                      activation: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, int]:
    """Remove dead units of ``net`` in place; returns group key -> units removed."""
    act = activation or torch.relu
    graph = PruneGraph(net, example_inputs, keep=heads)
    modules = dict(net.named_modules())
    removed: dict[str, int] = {}
    for info in graph.groups():
        outs = [modules[n] for n in info.out_layers]
        ins = [modules[n] for n in info.in_layers]
        if not all(isinstance(m, ROOTS) for m in outs + ins) or not _reads_whole_group(ins, info.width):
            continue  # normalisation layers in the group (fold them first), concat offsets, flatten
        in_dead = torch.stack([_rows_zero(m) for m in outs]).all(0)
        out_dead = torch.stack([_cols_zero(m) for m in ins]).all(0)
        value = act(sum(m.bias.detach() if m.bias is not None else torch.zeros(info.width) for m in outs))
        can_fold = all(isinstance(m, nn.Linear) and m.bias is not None for m in ins)
        fold = in_dead & ~out_dead & (value != 0)
        if can_fold and fold.any():
            for m in ins:
                m.bias += m.weight[:, fold] @ value[fold]
        dead = out_dead | (in_dead & (value == 0)) | (fold if can_fold else torch.zeros_like(fold))
        idxs = torch.nonzero(dead).flatten().tolist()
        if len(idxs) >= info.width:
            keep, idxs = idxs[0], idxs[1:]  # a layer keeps at least one unit...
            if can_fold and fold[keep]:
                for m in ins:  # ...whose constant now lives in the consumers' biases
                    m.weight[:, keep] = 0
        if idxs:
            graph.prune(info.key, idxs)
            removed[info.key] = len(idxs)
    return removed


def _reads_whole_group(ins: list[nn.Module], width: int) -> bool:
    """Every consumer reads exactly the group's channels (no concat offsets, no flatten)."""
    return all(
        (m.in_features if isinstance(m, nn.Linear) else m.in_channels) == width for m in ins
    )

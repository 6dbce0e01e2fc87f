"""What happens to a network during training: gradual structured pruning and its baselines.

- `PruneGraph` (graph.py, the only module importing torch-pruning): coupled channel groups of a
  model, their importance, physical removal mirrored onto twin (target) networks.
- `track_removal` (surgery.py): keeps optimizers (Adam moments, step) on the live parameters.
- `CubicSchedule` / `LinearSchedule` / `OneShotSchedule` (schedule.py): when and how much.
- `GradualPruner` (gradual.py): schedule + graph + surgery for a set of networks; `prune_once`:
  one network pruned at once to a ratio (benchmark tables).
- `MagnitudeMasker` (masking.py): the unstructured, masked baseline.
- `InputScale`: the module every raw input must pass through before a `torch.cat` (see below).

Names from graph.py and gradual.py are loaded on first use, so importing `edgerl.prune` (e.g. for
`InputScale` or a schedule) does not import torch-pruning.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from edgerl.prune.importance import Importance, lowest_indices
from edgerl.prune.masking import MagnitudeMasker, sparsity
from edgerl.prune.schedule import (
    CubicSchedule,
    LinearSchedule,
    OneShotSchedule,
    PruningSchedule,
    schedule_from_dict,
)
from edgerl.prune.surgery import track_removal


class InputScale(nn.Module):
    """Per-feature affine map y = x * weight + bias (identity at initialisation).

    Why it exists: torch-pruning 1.6.1 cannot see a tensor that no parameterised module produced
    (a raw observation, an action, an input normalised with buffers only). When such a tensor is
    concatenated with hidden features (`torch.cat([obs, h])`, DenseNet/OFENet, D2RL), the concat
    offsets are computed without it: groups are merged and the wrong input columns are removed,
    sometimes with a forward that still runs (upstream issue #481). Passing every raw input through
    a module with parameters before any concat gives the tracer its width. `PruneGraph` refuses to
    prune through a concat that still has an untraceable input.

    Args:
        num_features: size of the last dimension.
        trainable: whether weight and bias are learned (the graph traces it either way).
    """

    def __init__(self, num_features: int, trainable: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features), requires_grad=trainable)
        self.bias = nn.Parameter(torch.zeros(num_features), requires_grad=trainable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale and shift each feature."""
        return x * self.weight + self.bias

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}"


def layer_widths(model: nn.Module) -> dict[str, int]:
    """Output width of every Linear (out_features) and Conv (out_channels), by qualified name.

    Enough to rebuild a pruned network without torch-pruning: each layer's input width follows
    from the widths of the layers feeding it.
    """
    widths: dict[str, int] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            widths[name] = m.out_features
        elif isinstance(m, nn.modules.conv._ConvNd):
            widths[name] = m.out_channels
    return widths


_LAZY = {
    "PruneGraph": "edgerl.prune.graph",
    "GroupInfo": "edgerl.prune.graph",
    "PruneGraphError": "edgerl.prune.graph",
    "GradualPruner": "edgerl.prune.gradual",
    "PruneTarget": "edgerl.prune.gradual",
    "PruneReport": "edgerl.prune.gradual",
    "prune_once": "edgerl.prune.gradual",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgerl.prune' has no attribute {name!r}")


__all__ = [
    "CubicSchedule",
    "GradualPruner",
    "GroupInfo",
    "Importance",
    "InputScale",
    "LinearSchedule",
    "MagnitudeMasker",
    "OneShotSchedule",
    "PruneGraph",
    "PruneGraphError",
    "PruneReport",
    "PruneTarget",
    "PruningSchedule",
    "layer_widths",
    "lowest_indices",
    "prune_once",
    "schedule_from_dict",
    "sparsity",
    "track_removal",
]

"""Channel-importance criteria for group pruning, by name.

This module names the criteria and ranks scores; `edgerl.prune.graph` (the only module that imports
torch-pruning) maps each name onto torch-pruning's group importance. Scores are per channel of a
group, aggregated over every coupled layer (mean over members), so the lowest-scoring channels
of a group are the ones removed.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

import torch

from edgerl.errors import ConfigError


class Importance(str, Enum):
    """Built-in criteria."""

    L1 = "l1"
    """Group L1 norm of the weights of every coupled layer (default; the paper's criterion)."""
    L2 = "l2"
    """Group squared-L2 norm."""
    TAYLOR = "taylor"
    """First-order Taylor |w * dL/dw|; needs fresh gradients (call `loss.backward()` first)."""

    @classmethod
    def parse(cls, value: Importance | str) -> Importance:
        """Accept an `Importance` or its name (case-insensitive).

        Raises:
            ConfigError: unknown name.
        """
        if isinstance(value, Importance):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            names = [m.value for m in cls]
            raise ConfigError(f"unknown importance {value!r}; expected one of {names}") from None

    @property
    def needs_gradients(self) -> bool:
        """Whether the criterion reads `param.grad`."""
        return self is Importance.TAYLOR


ImportanceLike = Importance | str | Callable[[Any], torch.Tensor]
"""A built-in name, or (advanced) a callable torch-pruning group -> one score per channel."""


def lowest_indices(scores: torch.Tensor, n: int) -> list[int]:
    """Indices of the `n` lowest scores, sorted ascending by index (ties: lower index first).

    Args:
        scores: one score per channel (1-D).
        n: how many to return (0 <= n <= len(scores)).
    """
    if scores.dim() != 1:
        raise ValueError(f"scores must be 1-D, got shape {tuple(scores.shape)}")
    if not 0 <= n <= scores.numel():
        raise ValueError(f"cannot pick {n} of {scores.numel()} channels")
    if n == 0:
        return []
    if not torch.isfinite(scores).all():
        raise ValueError("importance scores contain NaN or infinity")
    order = torch.argsort(scores.detach().double().cpu(), stable=True)
    return sorted(int(i) for i in order[:n])

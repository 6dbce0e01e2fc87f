"""Unstructured magnitude pruning with masks: the baseline structured pruning is compared with.

Weights of Linear/Conv layers are zeroed by binary masks, following a pruning schedule (here the
ratio is the fraction of weights, not channels). Masks only grow: a weight once pruned stays
pruned. Call `apply()` after every optimizer step so updates cannot revive masked weights.
Nothing gets smaller or faster: the shapes are unchanged (see REFERENCE.md, Obando-Ceron 2024).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from edgerl.errors import ConfigError
from edgerl.prune.schedule import PruningSchedule, due_ratio, schedule_from_dict

_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def _weights(model: nn.Module, keep: Iterable[str] = ()) -> dict[str, nn.Parameter]:
    kept = set(keep)
    return {
        f"{name}.weight" if name else "weight": m.weight
        for name, m in model.named_modules()
        if isinstance(m, _LAYERS) and name not in kept
    }


def sparsity(model: nn.Module) -> dict[str, float]:
    """Fraction of exactly-zero weights per Linear/Conv weight, plus `"total"` over all of them."""
    out: dict[str, float] = {}
    zeros = total = 0
    for name, w in _weights(model).items():
        z = int((w.detach() == 0).sum())
        out[name] = z / w.numel()
        zeros += z
        total += w.numel()
    out["total"] = zeros / total if total else 0.0
    return out


class MagnitudeMasker:
    """Gradual magnitude pruning of Linear/Conv weights with masks.

    Args:
        model: network whose weights are masked.
        schedule: gives the weight-sparsity target per step and the pruning steps.
        scope: "global" ranks all weights together; "layer" gives every layer the same sparsity.
        keep: names of layers never masked (e.g. output heads).
        twins: identical networks (targets) that receive the same masks in `apply()`.
    """

    def __init__(
        self,
        model: nn.Module,
        schedule: PruningSchedule,
        scope: str = "global",
        keep: Sequence[str] = (),
        twins: Sequence[nn.Module] = (),
    ) -> None:
        if scope not in ("global", "layer"):
            raise ConfigError(f"masking scope must be 'global' or 'layer', got {scope!r}")
        self.schedule = schedule
        self.scope = scope
        self.keep = tuple(keep)
        self.params = _weights(model, self.keep)
        self.twin_params = [_weights(t, self.keep) for t in twins]
        if not self.params:
            raise ConfigError(f"{type(model).__name__} has no Linear/Conv weight to mask")
        self.masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in self.params.items()}
        self.applied_ratio = 0.0
        self._last_step: int | None = None

    @torch.no_grad()
    def step(self, global_step: int) -> float | None:
        """Grow the masks to the schedule's target at `global_step` and apply them.

        Returns:
            The new sparsity target if masks changed, else None.
        """
        last, self._last_step = self._last_step, global_step
        ratio = due_ratio(self.schedule, global_step, last, self.applied_ratio)
        if ratio is None:
            return None
        if self.scope == "global":
            self._grow(list(self.params), ratio)
        else:
            for name in self.params:
                self._grow([name], ratio)
        self.applied_ratio = ratio
        self.apply()
        return ratio

    def _grow(self, names: list[str], ratio: float) -> None:
        # Already-masked weights rank lowest (-1), so masks never shrink.
        scores = torch.cat(
            [
                torch.where(self.masks[n], self.params[n].detach().abs(), -1.0).reshape(-1).float()
                for n in names
            ]
        )
        k = int(round(ratio * scores.numel()))
        alive = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
        alive[torch.argsort(scores, stable=True)[:k]] = False
        offset = 0
        for n in names:
            size = self.masks[n].numel()
            self.masks[n] = alive[offset : offset + size].view_as(self.masks[n]) & self.masks[n]
            offset += size

    @torch.no_grad()
    def apply(self) -> None:
        """Zero masked weights of the model and twins (call after every optimizer step)."""
        for params in (self.params, *self.twin_params):
            for name, p in params.items():
                p.mul_(self.masks[name].to(p.device))

    def state_dict(self) -> dict[str, Any]:
        """Masks (bool tensors on CPU), applied ratio, scope and schedule as plain types."""
        return {
            "masks": {n: m.cpu() for n, m in self.masks.items()},
            "applied_ratio": self.applied_ratio,
            "scope": self.scope,
            "keep": list(self.keep),
            "schedule": self.schedule.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`; the masked layers must match by name and shape."""
        masks = state["masks"]
        if set(masks) != set(self.masks):
            raise ConfigError(
                f"mask names differ: checkpoint {sorted(masks)[:5]}..., model {sorted(self.masks)[:5]}..."
            )
        for n, m in masks.items():
            if m.shape != self.masks[n].shape:
                raise ConfigError(
                    f"mask {n!r} has shape {tuple(m.shape)}, weight {tuple(self.masks[n].shape)}"
                )
            self.masks[n] = m.to(device=self.params[n].device, dtype=torch.bool)
        self.applied_ratio = float(state["applied_ratio"])
        self.scope = state["scope"]
        self.schedule = schedule_from_dict(state["schedule"])
        self.apply()

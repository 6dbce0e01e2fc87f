"""Naive per-layer structured pruning: the baseline that ignores coupling (REFERENCE.md section 1).

Every Linear/Conv layer except the output heads ranks its own output channels by the norm of its
own filter (weight row) and loses the weakest, on the same schedule and to the same widths as
group pruning. Each layer chooses alone, so the convs of one residual stream (a stage's conv and
the second conv of each residual block, added together) pick different channels. Removing
different channels from tensors that are summed is impossible, so the choice is carried out with
masks: the selected filters (weight rows and biases) are zeroed, and re-zeroed after every
optimizer step. A stream channel still carries the sum of its unmasked producers, so the network
keeps its dense shapes; compaction (`edgerl.compact.units.remove_dead_units`) can remove a stream
channel only where every coupled conv masked it, and the uncoupled layers' masked channels.

No torch-pruning here: masks are plain bool tensors per layer, checkpointed as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from edgerl.errors import ConfigError
from edgerl.prune.importance import Importance, lowest_indices
from edgerl.prune.schedule import PruningSchedule, due_ratio, schedule_from_dict

_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)
STATE_VERSION = 1


def naive_width(original: int, ratio: float, round_to: int | None = None) -> int:
    """Channels a layer keeps at channel ratio `ratio` (the same rule as group pruning)."""
    from edgerl.prune.gradual import target_width

    return target_width(original, ratio, round_to)


def filter_norms(layer: nn.Module, p: int = 1) -> torch.Tensor:
    """The L`p` norm of each output channel's filter (weight row) of a Linear/Conv layer."""
    w = layer.weight.detach()
    return w.reshape(w.shape[0], -1).abs().pow(p).sum(1).float().cpu()


def _layer_names(model: nn.Module, keep: Iterable[str | nn.Module]) -> list[str]:
    name_of = {m: n for n, m in model.named_modules()}
    kept = set()
    for k in keep:
        name = name_of.get(k) if isinstance(k, nn.Module) else k
        if name is None or name not in dict(model.named_modules()):
            raise ConfigError(f"keep layer {k!r} is not a submodule of {type(model).__name__}")
        kept.add(name)
    return [n for n, m in model.named_modules() if isinstance(m, _LAYERS) and n not in kept]


class NaiveFilterMasker:
    """Per-layer filter-norm pruning with masks, on a schedule; heads are never masked.

    Args:
        model: network whose Linear/Conv output channels are masked.
        schedule: channel ratio per step and the pruning steps.
        keep: layers (names or modules) never masked: the output heads.
        twins: identical networks (targets) that receive the same masks in `apply()`.
        importance: "l1" (default) or "l2" norm of each filter.
        round_to: round each layer's remaining width to a multiple of this, or None.

    Raises:
        ConfigError: unknown keep layer, an importance other than l1/l2, or twins that differ.
    """

    def __init__(self, model: nn.Module, schedule: PruningSchedule, keep: Iterable[str | nn.Module] = (),
                 twins: Sequence[nn.Module] = (), importance: Importance | str = Importance.L1,
                 round_to: int | None = None) -> None:
        self.importance = Importance.parse(importance)
        if self.importance not in (Importance.L1, Importance.L2):
            raise ConfigError(f"--prune naive ranks filters by their own l1 or l2 norm, not {self.importance.value!r}")
        self.schedule = schedule
        self.round_to = round_to
        names = _layer_names(model, keep)
        if not names:
            raise ConfigError(f"{type(model).__name__} has no Linear/Conv layer to prune besides its heads")
        self.layers = {n: model.get_submodule(n) for n in names}
        self.twin_layers: list[dict[str, nn.Module]] = []
        for i, twin in enumerate(twins):
            layers = {n: twin.get_submodule(n) for n in names}
            if any(layers[n].weight.shape != self.layers[n].weight.shape for n in names):
                raise ConfigError(f"twin {i} ({type(twin).__name__}) differs from the model in layer shapes")
            self.twin_layers.append(layers)
        self.masks = {n: torch.ones(m.weight.shape[0], dtype=torch.bool) for n, m in self.layers.items()}
        """Layer name -> bool per output channel (True: kept)."""
        self.applied_ratio = 0.0
        self._last_step: int | None = None

    @torch.no_grad()
    def step(self, global_step: int) -> float | None:
        """Grow the masks to the schedule's ratio at `global_step` and apply them.

        Returns:
            The new ratio if this was a pruning step that asked for more, else None.
        """
        last, self._last_step = self._last_step, global_step
        ratio = due_ratio(self.schedule, global_step, last, self.applied_ratio)
        if ratio is None:
            return None
        p = 1 if self.importance is Importance.L1 else 2
        for name, layer in self.layers.items():
            mask = self.masks[name]
            goal = naive_width(mask.numel(), ratio, self.round_to)
            extra = int(mask.sum()) - goal
            if extra > 0:
                top = torch.finfo(torch.float32).max  # masked channels rank last: masks only grow
                scores = torch.where(mask, filter_norms(layer, p), top)
                mask[lowest_indices(scores, extra)] = False
        self.applied_ratio = ratio
        self.apply()
        return ratio

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the masked filters (weight rows and biases) of the model and its twins."""
        for layers in (self.layers, *self.twin_layers):
            for name, layer in layers.items():
                keep = self.masks[name].to(layer.weight.device)
                shape = (-1,) + (1,) * (layer.weight.dim() - 1)
                layer.weight.mul_(keep.view(shape).to(layer.weight.dtype))
                if layer.bias is not None:
                    layer.bias.mul_(keep.to(layer.bias.dtype))

    def masked(self) -> dict[str, list[int]]:
        """Layer name -> masked output channels (what each layer chose on its own)."""
        return {n: torch.nonzero(~m).flatten().tolist() for n, m in self.masks.items()}

    def state_dict(self) -> dict[str, Any]:
        """Masks (bool tensors on the CPU) and progress as plain types."""
        return {
            "version": STATE_VERSION,
            "masks": {n: m.clone() for n, m in self.masks.items()},
            "applied_ratio": self.applied_ratio,
            "importance": self.importance.value,
            "round_to": self.round_to,
            "schedule": self.schedule.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` and apply the masks.

        Raises:
            ConfigError: unknown version, or layers that differ by name or width.
        """
        if state.get("version") != STATE_VERSION:
            raise ConfigError(f"unsupported naive pruning state version {state.get('version')!r}")
        masks = state["masks"]
        if set(masks) != set(self.masks):
            raise ConfigError(f"naive pruning state masks layers {sorted(masks)}, the network has {sorted(self.masks)}")
        for n, m in masks.items():
            if m.shape != self.masks[n].shape:
                raise ConfigError(f"naive mask of {n!r} has {m.numel()} channels, the layer {self.masks[n].numel()}")
        self.masks = {n: m.to(dtype=torch.bool, device="cpu").clone() for n, m in masks.items()}
        self.applied_ratio = float(state["applied_ratio"])
        self.importance = Importance.parse(state["importance"])
        self.round_to = state.get("round_to")
        self.schedule = schedule_from_dict(state["schedule"])
        self.apply()

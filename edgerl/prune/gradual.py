"""Gradual group-structured pruning during training (schedule + graph + optimizer surgery).

Each group's target width is `round(original * (1 - ratio(step)))` (at least 1, optionally rounded
to a multiple of `round_to`), where `ratio` is the schedule's channel ratio. Parameters shrink by
about 1 - (1 - ratio)^2, as both a layer's outputs and its consumer's inputs go.
The pruner's state is a plain dict (original widths, schedule, progress): no pickled modules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from edgerl.errors import ConfigError
from edgerl.prune.graph import PruneGraph
from edgerl.prune.importance import Importance, ImportanceLike
from edgerl.prune.schedule import OneShotSchedule, PruningSchedule, due_ratio, schedule_from_dict

STATE_VERSION = 1


@dataclass
class PruneTarget:
    """One network to prune."""

    model: nn.Module
    """The online network."""
    example_inputs: Any
    """Tensor, tuple or dict of example inputs for tracing."""
    keep: Sequence[str] = ()
    """Layers whose output width never changes (output heads)."""
    twins: Sequence[nn.Module] = ()
    """Identical copies (Polyak/target networks) pruned with the same indices."""


@dataclass
class PruneReport:
    """What one pruning step did."""

    step: int
    """Global step."""
    ratio: float
    """Schedule channel ratio applied."""
    widths: dict[str, dict[str, int]] = field(default_factory=dict)
    """Network -> group key -> width after the step."""
    removed: dict[str, dict[str, int]] = field(default_factory=dict)
    """Network -> group key -> channels removed in this step (groups that changed only)."""
    params: dict[str, int] = field(default_factory=dict)
    """Network -> parameter count after the step."""


def target_width(original: int, ratio: float, round_to: int | None = None) -> int:
    """Width a group of `original` channels should have at channel ratio `ratio`.

    round(original * (1 - ratio)), then to the nearest multiple of `round_to` (ties upward, at
    least `round_to`, never above `original`), and never below 1.
    """
    width = math.floor(original * (1.0 - ratio) + 0.5)
    if round_to and round_to > 1 and original >= round_to:
        width = max(round_to, round_to * math.floor(width / round_to + 0.5))
    return max(1, min(original, width))


def _as_target(value: PruneTarget | tuple) -> PruneTarget:
    return value if isinstance(value, PruneTarget) else PruneTarget(*value)


class GradualPruner:
    """Prunes several networks on a schedule, keeping optimizers and twins in step.

    Example:
        >>> pruner = GradualPruner(
        ...     {"actor": (actor, obs, ["mu", "log_std"]), "qf": (qf, (obs, act), ["q1.out", "q2.out"], [qf_target])},
        ...     optimizers=[actor_opt, q_opt], schedule=CubicSchedule(0.8, total_steps))
        >>> report = pruner.step(global_step)   # after the optimizer step

    Args:
        targets: name -> `PruneTarget` or tuple (model, example_inputs, keep, twins).
        optimizers: every optimizer stepping any of the models' parameters.
        schedule: channel-ratio schedule.
        importance: criterion ranking channels inside a group ("l1", "l2", "taylor").
        round_to: round remaining widths to a multiple of this (hardware-friendly), or None.
    """

    def __init__(
        self,
        targets: Mapping[str, PruneTarget | tuple],
        optimizers: Sequence[torch.optim.Optimizer],
        schedule: PruningSchedule,
        importance: ImportanceLike = Importance.L1,
        round_to: int | None = None,
    ) -> None:
        if not targets:
            raise ConfigError("GradualPruner needs at least one network")
        if round_to is not None and round_to < 1:
            raise ConfigError(f"round_to must be >= 1 or None, got {round_to}")
        self.targets = {name: _as_target(t) for name, t in targets.items()}
        self.optimizers = list(optimizers)
        self.schedule = schedule
        self.importance = importance if callable(importance) else Importance.parse(importance)
        self.round_to = round_to
        self.graphs = {
            name: PruneGraph(t.model, t.example_inputs, keep=t.keep, twins=t.twins)
            for name, t in self.targets.items()
        }
        self.original_widths = {name: self._widths(name) for name in self.graphs}
        self.applied_ratio = 0.0
        self._last_step: int | None = None

    def _widths(self, name: str) -> dict[str, int]:
        return {g.key: g.width for g in self.graphs[name].groups()}

    def step(self, global_step: int) -> PruneReport | None:
        """Prune to the schedule's ratio at `global_step` if it is a pruning step.

        Returns:
            A report if pruning ran (even if nothing was left to remove), else None.
        """
        last, self._last_step = self._last_step, global_step
        ratio = due_ratio(self.schedule, global_step, last, self.applied_ratio)
        if ratio is None:
            return None
        report = PruneReport(step=global_step, ratio=ratio)
        for name, graph in self.graphs.items():
            # Score every group on the same (pre-removal) weights, then remove.
            plan = {}
            for key, orig in self.original_widths[name].items():
                width = graph.group(key).width
                goal = target_width(orig, ratio, self.round_to)
                if goal < width:
                    plan[key] = graph.lowest(key, width - goal, self.importance)
            graph.prune_many(plan, self.optimizers)
            report.removed[name] = {k: len(v) for k, v in plan.items()}
            report.widths[name] = self._widths(name)
            report.params[name] = sum(p.numel() for p in graph.model.parameters())
        self.applied_ratio = ratio
        return report

    def state_dict(self) -> dict[str, Any]:
        """Plain-dict state: original widths, schedule, applied ratio, settings."""
        return {
            "version": STATE_VERSION,
            "original_widths": {n: dict(w) for n, w in self.original_widths.items()},
            "schedule": self.schedule.to_dict(),
            "applied_ratio": self.applied_ratio,
            "importance": self.importance.value
            if isinstance(self.importance, Importance)
            else None,
            "round_to": self.round_to,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore progress onto networks already rebuilt at their pruned widths.

        Raises:
            ConfigError: unknown version, or networks/groups that differ from the checkpoint.
        """
        if state.get("version") != STATE_VERSION:
            raise ConfigError(f"unsupported pruner state version {state.get('version')!r}")
        widths = state["original_widths"]
        for name in self.graphs:
            now = self._widths(name)
            saved = widths.get(name)
            if saved is None or set(saved) != set(now):
                raise ConfigError(
                    f"pruner state for {name!r} has groups {sorted(saved or [])}, the network has "
                    f"{sorted(now)}: rebuild the network from the checkpoint's widths first"
                )
            grown = [k for k in now if now[k] > saved[k]]
            if grown:
                raise ConfigError(f"{name!r}: groups {grown} are wider than their original width")
        if set(widths) != set(self.graphs):
            raise ConfigError(f"pruner state networks {sorted(widths)} != {sorted(self.graphs)}")
        self.original_widths = {n: {k: int(v) for k, v in w.items()} for n, w in widths.items()}
        self.schedule = schedule_from_dict(state["schedule"])
        self.applied_ratio = float(state["applied_ratio"])
        self.round_to = state.get("round_to")
        if state.get("importance"):
            self.importance = Importance.parse(state["importance"])


def prune_once(net: nn.Module, example_inputs: Any, ratio: float, round_to: int | None = None,
               importance: ImportanceLike = Importance.L1) -> PruneReport | None:
    """Prune ``net`` by groups, in place and at once, to channel ratio ``ratio`` (its ``heads()``
    kept): what a pruned network of a latency or size table is, without training it."""
    pruner = GradualPruner({"net": (net, example_inputs, net.heads())}, optimizers=[],
                           schedule=OneShotSchedule(ratio, 1), importance=importance, round_to=round_to)
    return pruner.step(0)

"""Pruning schedules: which fraction of the original channels (or weights) is removed at a step.

Pure Python (no torch, no torch-pruning) so configs and checkpoints can use them anywhere.
A schedule maps a global step to a target ratio in [0, 1) and says on which steps pruning runs.
Its state is a plain dict (`to_dict` / `schedule_from_dict`) that travels inside checkpoints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from edgerl.errors import ConfigError


@runtime_checkable
class PruningSchedule(Protocol):
    """What `GradualPruner` and `MagnitudeMasker` need from a schedule."""

    def target_ratio(self, step: int) -> float:
        """Fraction of the original channels/weights that should be gone at `step`."""
        ...

    def should_prune(self, step: int, last_step: int | None = None) -> bool:
        """Whether pruning runs at `step`, given the step of the previous call."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable state."""
        ...


def due_ratio(schedule: PruningSchedule, step: int, last_step: int | None, applied_ratio: float) -> float | None:
    """The ratio a pruner should reach at ``step``, or None when this is not a pruning step or
    the schedule asks for no more than ``applied_ratio`` (what the pruner already removed)."""
    if not schedule.should_prune(step, last_step):
        return None
    ratio = schedule.target_ratio(step)
    return ratio if ratio > applied_ratio else None


def _check_common(final_ratio: float, total_steps: int, every: int) -> None:
    if not 0.0 <= final_ratio < 1.0:
        raise ConfigError(f"final_ratio must be in [0, 1), got {final_ratio}")
    if total_steps < 1:
        raise ConfigError(f"total_steps must be >= 1, got {total_steps}")
    if every < 1:
        raise ConfigError(f"every (pruning frequency in steps) must be >= 1, got {every}")


@dataclass(frozen=True)
class _WindowSchedule:
    """Shared part of the cubic and linear schedules: a ramp from `start` to `end`."""

    final_ratio: float
    """Ratio reached at the end of the window and kept afterwards (r_f)."""
    total_steps: int
    """Length of training in steps; `start` and `end` are fractions of it."""
    start: float = 0.2
    """Start of the ramp as a fraction of `total_steps` (t0)."""
    end: float = 0.8
    """End of the ramp as a fraction of `total_steps` (t1)."""
    every: int = 1
    """Prune every `every` steps inside the window (counted from t0)."""

    kind = "window"

    def __post_init__(self) -> None:
        _check_common(self.final_ratio, self.total_steps, self.every)
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise ConfigError(
                f"need 0 <= start <= end <= 1, got start={self.start}, end={self.end}"
            )

    @property
    def start_step(self) -> int:
        """t0 in steps."""
        return int(round(self.start * self.total_steps))

    @property
    def end_step(self) -> int:
        """t1 in steps."""
        return int(round(self.end * self.total_steps))

    def _ramp(self, progress: float) -> float:  # progress in [0, 1]
        raise NotImplementedError

    def target_ratio(self, step: int) -> float:
        """Ratio at `step`: 0 before t0, the ramp inside [t0, t1], `final_ratio` after t1."""
        t0, t1 = self.start_step, self.end_step
        if step < t0:
            return 0.0
        if step >= t1:
            return self.final_ratio
        return self.final_ratio * self._ramp((step - t0) / (t1 - t0))

    def should_prune(self, step: int, last_step: int | None = None) -> bool:
        """True when a pruning step falls in (last_step, step]: every `every` steps from t0 on,
        and on every call from t1 on. Without `last_step` only `step` itself is tested. Callers
        that advance by more than one step at a time (vectorised envs, PPO iterations) pass the
        step of their previous call, so they never skip a pruning step."""
        t0 = self.start_step
        if step < t0:
            return False
        if step >= self.end_step:
            return True
        if last_step is None:
            return (step - t0) % self.every == 0
        return last_step < t0 or (step - t0) // self.every > (last_step - t0) // self.every

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with a `kind` tag; inverse of `schedule_from_dict`."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class CubicSchedule(_WindowSchedule):
    """Zhu & Gupta (2017): r(t) = r_f * (1 - (1 - (t - t0) / (t1 - t0))^3) for t0 <= t <= t1."""

    kind = "cubic"

    def _ramp(self, progress: float) -> float:
        return 1.0 - (1.0 - progress) ** 3


@dataclass(frozen=True)
class LinearSchedule(_WindowSchedule):
    """r(t) = r_f * (t - t0) / (t1 - t0) for t0 <= t <= t1."""

    kind = "linear"

    def _ramp(self, progress: float) -> float:
        return progress


@dataclass(frozen=True)
class OneShotSchedule:
    """Remove `final_ratio` at once when step `at * total_steps` is reached."""

    final_ratio: float
    """Ratio applied at `at` and kept afterwards."""
    total_steps: int
    """Length of training in steps."""
    at: float = 0.0
    """When to prune, as a fraction of `total_steps`."""

    kind = "oneshot"

    def __post_init__(self) -> None:
        _check_common(self.final_ratio, self.total_steps, 1)
        if not 0.0 <= self.at <= 1.0:
            raise ConfigError(f"at must be in [0, 1], got {self.at}")

    @property
    def at_step(self) -> int:
        """The pruning step."""
        return int(round(self.at * self.total_steps))

    def target_ratio(self, step: int) -> float:
        """0 before `at_step`, `final_ratio` from it on."""
        return self.final_ratio if step >= self.at_step else 0.0

    def should_prune(self, step: int, last_step: int | None = None) -> bool:
        """True from `at_step` on (later calls find nothing left to remove)."""
        return step >= self.at_step

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with a `kind` tag; inverse of `schedule_from_dict`."""
        return {"kind": self.kind, **asdict(self)}


_KINDS: dict[str, type] = {c.kind: c for c in (CubicSchedule, LinearSchedule, OneShotSchedule)}


def schedule_from_dict(state: dict[str, Any]) -> PruningSchedule:
    """Rebuild a schedule from `to_dict()` output.

    Raises:
        ConfigError: unknown `kind` or fields.
    """
    fields = dict(state)
    kind = fields.pop("kind", None)
    if kind not in _KINDS:
        raise ConfigError(
            f"unknown pruning schedule kind {kind!r}; expected one of {sorted(_KINDS)}"
        )
    try:
        return _KINDS[kind](**fields)
    except TypeError as exc:
        raise ConfigError(f"invalid fields for {kind} schedule: {exc}") from exc

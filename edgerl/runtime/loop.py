"""Fixed-rate control loop around a :class:`Policy`, with a fallback action and a summary."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import EdgerlError
from .latency import LatencyRecorder
from .policy import Policy
from .profile import TargetProfile

log = logging.getLogger(__name__)


@dataclass
class LoopSummary:
    """What happened during :meth:`ControlLoop.run`."""

    steps: int = 0
    """Ticks executed (one action written per tick)."""
    actions: int = 0
    """Policy actions written."""
    fallbacks: int = 0
    """Fallback actions written (errors + deadline misses)."""
    errors: int = 0
    """Exceptions raised by ``read_obs`` or ``policy.act``."""
    deadline_misses: int = 0
    """Policy actions ready after the deadline (replaced by the fallback)."""
    skipped_ticks: int = 0
    """Ticks dropped because a step overran by more than a period (the schedule never drifts)."""
    duration_s: float = 0.0
    """Wall time of the loop (monotonic clock)."""
    stopped_by: str = ""
    """``max_steps``, ``stop`` or ``max_consecutive_failures``."""
    last_error: str | None = None
    """Type and message of the last exception."""
    step_latency: dict[str, Any] = field(default_factory=dict)
    """Tick-to-action latency (read_obs + act) percentiles in us, misses against the deadline."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return asdict(self)


def default_fallback(policy: Policy) -> np.ndarray | int:
    """Zeros clipped into the action bounds (``low`` if 0 is below it); action 0 if discrete.

    Zero is "no command" for torque/velocity/delta-position actions; for absolute position
    targets pass a safe pose (e.g. standing) as ``fallback_action`` instead.
    """
    c = policy.contract
    if c.discrete:
        return 0
    zeros = np.zeros(c.act_shape, c.act_dtype)
    low = c.act_low if c.act_low is not None else -np.inf
    high = c.act_high if c.act_high is not None else np.inf
    return np.clip(zeros, low, high).astype(c.act_dtype)


def _check_fallback(policy: Policy, action: Any) -> np.ndarray | int:
    c = policy.contract
    if c.discrete:
        if isinstance(action, bool) or not isinstance(action, (int, np.integer)) or not 0 <= int(action) < (c.n or 0):
            raise ValueError(f"fallback_action must be an int in [0, {c.n}) for this discrete policy, got {action!r}")
        return int(action)
    a = np.asarray(action, dtype=c.act_dtype)
    if a.shape != c.act_shape or not np.isfinite(a).all():
        raise ValueError(f"fallback_action must be a finite array of shape {list(c.act_shape)}, got {action!r}")
    if (c.act_low is not None and np.any(a < c.act_low)) or (c.act_high is not None and np.any(a > c.act_high)):
        raise ValueError(f"fallback_action {a.tolist()} lies outside the contract's action bounds")
    return a


class ControlLoop:
    """Read an observation, act, write the action, at a fixed rate.

    Each tick is scheduled at ``t0 + k / rate_hz`` on the monotonic clock, so sleeping never
    accumulates drift; after an overrun longer than a period the missed ticks are skipped (counted),
    not replayed. If ``read_obs`` or ``policy.act`` raises, or the action is ready later than
    ``deadline_us`` after the tick, the fallback action is written instead and counted. Exceptions
    from ``write_action`` propagate: the loop cannot command the robot any more.

    Episodes: :meth:`run` starts one (``policy.reset()``: a recurrent policy's state is zeroed, as
    the contract's ``recurrent.reset`` says); call :meth:`new_episode` (e.g. from the robot's reset
    handler, or a signal handler) and the next tick zeros it again before acting.
    """

    def __init__(
        self,
        policy: Policy,
        read_obs: Callable[[], Any],
        write_action: Callable[[Any], None],
        rate_hz: float | None = None,
        fallback_action: Any = None,
        max_steps: int | None = None,
        deadline_us: float | None = None,
        max_consecutive_failures: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Args:
            policy: A loaded policy.
            read_obs: Returns the current observation.
            write_action: Sends an action to the robot.
            rate_hz: Loop rate; default the profile's ``control_rate_hz``.
            fallback_action: Written on errors and deadline misses; default :func:`default_fallback`.
            max_steps: Stop after this many ticks (None: until :meth:`stop`).
            deadline_us: Tick-to-action deadline; default the control period.
            max_consecutive_failures: Raise after this many fallbacks in a row (None: never).
            clock: Monotonic clock in seconds (injectable for tests).
            sleep: Sleep function in seconds (injectable for tests).
        """
        self.policy = policy
        self.read_obs, self.write_action = read_obs, write_action
        self.rate_hz = float(rate_hz if rate_hz is not None else policy.profile.control_rate_hz)
        if not self.rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz!r}")
        self.period = 1.0 / self.rate_hz
        self.deadline = (deadline_us * 1e-6) if deadline_us is not None else self.period
        self.fallback_action = _check_fallback(
            policy, default_fallback(policy) if fallback_action is None else fallback_action)
        self.max_steps = max_steps
        self.max_consecutive_failures = max_consecutive_failures
        self.clock, self.sleep = clock, sleep
        self.summary = LoopSummary()
        self._stop = False
        self._new_episode = True

    def stop(self) -> None:
        """Ask the loop to finish after the current tick (safe from a signal handler)."""
        self._stop = True

    def new_episode(self) -> None:
        """Start a new episode at the next tick: ``policy.reset()`` before it acts (safe from a signal
        handler or another thread: only a flag is set here)."""
        self._new_episode = True

    def _fallback(self) -> Any:
        fb = self.fallback_action
        return fb.copy() if isinstance(fb, np.ndarray) else fb

    def run(self) -> LoopSummary:
        """Run until ``max_steps``, :meth:`stop` or too many consecutive failures; return the summary.

        Raises:
            EdgerlError: ``max_consecutive_failures`` fallbacks in a row (summary in ``self.summary``).
        """
        s = self.summary = LoopSummary()
        rec = LatencyRecorder(self.deadline * 1e6)
        clock, period = self.clock, self.period
        self._stop = False
        self._new_episode = True  # every run starts an episode
        t0 = clock()
        k, consecutive = 0, 0
        while not self._stop and (self.max_steps is None or s.steps < self.max_steps):
            tick = t0 + k * period
            now = clock()
            if now < tick:
                self.sleep(tick - now)
            failed = True
            try:
                if self._new_episode:
                    self._new_episode = False
                    self.policy.reset()
                action = self.policy.act(self.read_obs())
                ready = clock() - tick
                if ready > self.deadline:
                    s.deadline_misses += 1
                    action = self._fallback()
                else:
                    failed = False
            except Exception as e:  # noqa: BLE001 - any sensor/policy failure must yield the fallback
                ready = clock() - tick
                s.errors += 1
                s.last_error = f"{type(e).__name__}: {e}"
                if s.errors == 1 or s.errors % 100 == 0:
                    log.warning("control step %d failed (%d so far), sending fallback: %s", s.steps, s.errors, s.last_error)
                action = self._fallback()
            self.write_action(action)
            rec.add(int(ready * 1e9))
            s.steps += 1
            s.fallbacks += failed
            s.actions += not failed
            consecutive = consecutive + 1 if failed else 0
            if self.max_consecutive_failures is not None and consecutive >= self.max_consecutive_failures:
                self._finish(s, rec, t0, "max_consecutive_failures")
                raise EdgerlError(f"control loop stopped: {consecutive} consecutive steps needed the fallback action "
                                  f"(last error: {s.last_error or 'deadline miss'}); check sensors and timing")
            k += 1
            behind = clock() - (t0 + k * period)
            if behind > period:  # overran by more than a whole period: drop the missed ticks
                missed = int(behind // period)
                k += missed
                s.skipped_ticks += missed
        self._finish(s, rec, t0, "stop" if self._stop else "max_steps")
        return s

    def _finish(self, s: LoopSummary, rec: LatencyRecorder, t0: float, why: str) -> None:
        s.duration_s = self.clock() - t0
        s.stopped_by = why
        s.step_latency = rec.summary()


def apply_realtime(profile: TargetProfile) -> list[str]:
    """Pin this process to ``profile.cpu_affinity`` and give it SCHED_FIFO ``rt_priority`` (Linux).

    Returns:
        What was applied, for the log.

    Raises:
        EdgerlError: The OS refused (names the setting and how to grant it).
    """
    applied: list[str] = []
    if profile.cpu_affinity:
        try:
            os.sched_setaffinity(0, profile.cpu_affinity)
        except (OSError, AttributeError) as e:
            raise EdgerlError(f"cannot pin to CPUs {list(profile.cpu_affinity)} (profile cpu_affinity): {e}; "
                              "use CPU indices that exist on this machine (nproc) or set cpu_affinity: null") from None
        applied.append(f"cpu_affinity={list(profile.cpu_affinity)}")
    if profile.rt_priority:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(profile.rt_priority))
        except (OSError, AttributeError) as e:
            raise EdgerlError(f"cannot set SCHED_FIFO priority {profile.rt_priority} (profile rt_priority): {e}; "
                              "run under the systemd unit with LimitRTPRIO=99, grant CAP_SYS_NICE, "
                              "or set rt_priority: null") from None
        applied.append(f"SCHED_FIFO priority {profile.rt_priority}")
    return applied

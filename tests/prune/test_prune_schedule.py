"""Pruning schedules: values, frequency, serialisation."""

from __future__ import annotations

import json

import pytest

from edgerl.errors import ConfigError
from edgerl.prune import CubicSchedule, LinearSchedule, OneShotSchedule, schedule_from_dict


def test_cubic_values() -> None:
    s = CubicSchedule(final_ratio=0.8, total_steps=1000)  # t0 = 200, t1 = 800
    assert s.start_step == 200 and s.end_step == 800
    assert s.target_ratio(0) == 0.0 and s.target_ratio(199) == 0.0
    assert s.target_ratio(200) == 0.0
    assert s.target_ratio(500) == pytest.approx(0.8 * (1 - 0.5**3))
    assert s.target_ratio(800) == pytest.approx(0.8)
    assert s.target_ratio(10_000) == pytest.approx(0.8)
    values = [s.target_ratio(t) for t in range(0, 1001, 10)]
    assert values == sorted(values)
    # Cubic prunes fast early: more than linear in the first half of the window.
    assert s.target_ratio(400) > LinearSchedule(0.8, 1000).target_ratio(400)


def test_linear_and_oneshot_values() -> None:
    s = LinearSchedule(final_ratio=0.5, total_steps=100, start=0.0, end=1.0)
    assert s.target_ratio(25) == pytest.approx(0.125)
    o = OneShotSchedule(final_ratio=0.6, total_steps=100, at=0.3)
    assert o.target_ratio(29) == 0.0 and o.target_ratio(30) == 0.6 and o.target_ratio(99) == 0.6
    assert not o.should_prune(29) and o.should_prune(30)


def test_frequency() -> None:
    s = CubicSchedule(0.8, total_steps=100, every=10)
    steps = [t for t in range(101) if s.should_prune(t)]
    assert steps[:7] == [20, 30, 40, 50, 60, 70, 80]
    assert steps[7:] == list(range(81, 101))  # after t1 every step (cheap no-ops for the pruner)


@pytest.mark.parametrize(
    "schedule",
    [
        CubicSchedule(0.9, 5000, start=0.1, end=0.7, every=4),
        LinearSchedule(0.5, 10),
        OneShotSchedule(0.3, 100, at=0.5),
    ],
)
def test_round_trip_plain_dict(schedule) -> None:
    state = json.loads(json.dumps(schedule.to_dict()))
    assert schedule_from_dict(state) == schedule


def test_invalid_values_are_reported() -> None:
    with pytest.raises(ConfigError, match="final_ratio"):
        CubicSchedule(1.0, 100)
    with pytest.raises(ConfigError, match="start <= end"):
        CubicSchedule(0.5, 100, start=0.8, end=0.2)
    with pytest.raises(ConfigError, match="unknown pruning schedule"):
        schedule_from_dict({"kind": "exp"})


def test_callers_that_jump_steps_never_miss_a_pruning_step():
    from edgerl.prune.schedule import CubicSchedule

    sched = CubicSchedule(0.8, total_steps=10_000, start=0.2, end=0.8, every=300)
    # A PPO-like caller advancing 1024 steps at a time: the exact-step test alone would never fire.
    steps = list(range(1024, 10_001, 1024))
    fired_exact = [s for s in steps if sched.should_prune(s)]
    fired, last = [], None
    for s in steps:
        if sched.should_prune(s, last):
            fired.append(s)
        last = s
    assert fired_exact == [s for s in steps if s >= 8000]
    assert fired[0] == 2048 and all(s in fired for s in steps if 2000 <= s)

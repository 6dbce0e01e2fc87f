"""ControlLoop with fake sensors and a fake clock (the policy and backend are real)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import contract, ref_obs

from edgerl.runtime.errors import EdgerlError
from edgerl.runtime.loop import ControlLoop, apply_realtime, default_fallback
from edgerl.runtime.policy import Policy


class FakeClock:
    """Monotonic seconds that advance only when slept on or when a test says so."""

    def __init__(self) -> None:
        self.t = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        assert dt > 0
        self.sleeps.append(dt)
        self.t += dt


@pytest.fixture
def policy(bundle):
    with Policy.load(bundle) as p:
        yield p


def run_loop(policy, read_obs, clock, **kw):
    sent: list = []
    loop = ControlLoop(policy, read_obs, sent.append, clock=clock, sleep=clock.sleep, **kw)
    return loop.run(), sent, loop


def test_fixed_rate_schedule_does_not_drift(policy):
    clock = FakeClock()
    obs = ref_obs(1)[0]

    def read_obs():
        clock.t += 0.003  # 3 ms of sensor work every tick
        return obs

    summary, sent, _ = run_loop(policy, read_obs, clock, rate_hz=50, max_steps=100)
    assert (summary.steps, summary.actions, summary.fallbacks, summary.stopped_by) == (100, 100, 0, "max_steps")
    np.testing.assert_allclose(clock.sleeps, 0.017, atol=1e-9)  # 20 ms period - 3 ms work, every tick
    assert summary.duration_s == pytest.approx(100 * 0.02 - 0.017)
    np.testing.assert_allclose(sent[0], policy.act(obs))


def test_exceptions_send_the_fallback_and_are_counted(policy):
    clock = FakeClock()
    good = ref_obs(1)[0]
    script = iter([good, RuntimeError("camera timeout"), np.full(11, np.nan), good, np.zeros(5)])

    def read_obs():
        item = next(script)
        if isinstance(item, Exception):
            raise item
        return item

    summary, sent, loop = run_loop(policy, read_obs, clock, rate_hz=100, max_steps=5)
    assert (summary.errors, summary.fallbacks, summary.actions) == (3, 3, 2)
    fb = loop.fallback_action
    for i in (1, 2, 4):
        np.testing.assert_array_equal(sent[i], fb)
    assert not np.array_equal(sent[0], fb)
    assert summary.last_error.startswith("ObservationError: observation shape [5]")


def test_late_action_is_replaced_by_the_fallback(policy):
    clock = FakeClock()
    obs = ref_obs(1)[0]
    delays = iter([0.001, 0.009, 0.001])

    def read_obs():
        clock.t += next(delays)
        return obs

    summary, sent, loop = run_loop(policy, read_obs, clock, rate_hz=100, max_steps=3, deadline_us=5000)
    assert (summary.deadline_misses, summary.fallbacks, summary.actions) == (1, 1, 2)
    np.testing.assert_array_equal(sent[1], loop.fallback_action)
    assert summary.step_latency["misses"] == 1


def test_overrun_skips_ticks_instead_of_bursting(policy):
    clock = FakeClock()
    obs = ref_obs(1)[0]
    delays = iter([0.0, 0.035, 0.0, 0.0])  # second step takes 3.5 periods

    def read_obs():
        clock.t += next(delays)
        return obs

    summary, _, _ = run_loop(policy, read_obs, clock, rate_hz=100, max_steps=4)
    assert summary.skipped_ticks == 2 and summary.deadline_misses == 1
    # ticks t0+2p, t0+3p are dropped; t0+4p runs at once (5 ms late, within the deadline), then the
    # loop sleeps to t0+5p on the original grid: no burst of catch-up steps, no drift
    assert clock.sleeps == pytest.approx([0.01, 0.005])
    assert clock.t == pytest.approx(100.05)


def test_consecutive_failures_stop_the_loop(policy):
    clock = FakeClock()

    def broken():
        raise OSError("sensor bus down")

    loop = ControlLoop(policy, broken, lambda a: None, rate_hz=100, max_consecutive_failures=3,
                       clock=clock, sleep=clock.sleep)
    with pytest.raises(EdgerlError, match="3 consecutive steps needed the fallback action.*sensor bus down"):
        loop.run()
    assert loop.summary.steps == 3 and loop.summary.stopped_by == "max_consecutive_failures"


def test_stop_finishes_the_current_tick(policy):
    clock = FakeClock()
    obs = ref_obs(1)[0]
    loop = ControlLoop(policy, lambda: obs, lambda a: loop.stop(), clock=clock, sleep=clock.sleep)
    summary = loop.run()
    assert (summary.steps, summary.stopped_by) == (1, "stop")
    assert loop.rate_hz == policy.profile.control_rate_hz


def test_default_fallback_is_zero_clipped_into_bounds(make_bundle, tmp_path, mlp):
    c = contract(low=[0.5, -1.0, -3.0], high=[1.0, 1.0, -2.0])
    obs = ref_obs(8)
    actions = np.clip(mlp.numpy(obs), [0.5, -1.0, -3.0], [1.0, 1.0, -2.0]).astype(np.float32)
    with Policy.load(make_bundle(contract=c, reference_obs=obs, reference_actions=actions)) as p:
        np.testing.assert_array_equal(default_fallback(p), np.array([0.5, 0.0, -2.0], np.float32))


@pytest.mark.parametrize(("fallback", "message"), [
    (np.zeros(2), r"shape \[3\]"),
    ([np.nan, 0, 0], "finite"),
    ([5.0, 0, 0], "outside the contract's action bounds"),
])
def test_bad_fallback_is_refused(policy, fallback, message):
    with pytest.raises(ValueError, match=message):
        ControlLoop(policy, lambda: None, lambda a: None, fallback_action=fallback)


def test_apply_realtime_without_settings_does_nothing(policy):
    assert apply_realtime(policy.profile) == []

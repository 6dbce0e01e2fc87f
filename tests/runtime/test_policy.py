"""Policy: reference check, observation validation, safe actions, batching, latency stats."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HIGH, LOW, MLP, contract, discrete_model, image_model, log_model, ref_obs

from edgerl.runtime.errors import ActionError, BundleError, ObservationError
from edgerl.runtime.policy import Policy
from edgerl.runtime.profile import validate_profile


@pytest.fixture
def policy(bundle):
    with Policy.load(bundle) as p:
        yield p


def test_act_matches_reference_and_contract(policy, mlp):
    obs = ref_obs(50, seed=9)
    for o in obs:
        a = policy.act(o)
        assert a.shape == (3,) and a.dtype == np.float32
        np.testing.assert_allclose(a, mlp.numpy(o[None])[0], atol=1e-5)
    assert policy.backend_name == "ort-cpu" and policy.skipped_backends == {}


def test_act_equals_act_batch_through_io_binding(policy):
    """act() uses IO binding on preallocated buffers; act_batch() the plain path. Same numbers."""
    obs = ref_obs(20, seed=3)
    singles = np.stack([policy.act(o) for o in obs])
    np.testing.assert_array_equal(singles, policy.act_batch(obs))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_any_float_dtype_is_cast(policy, dtype):
    o = ref_obs(1)[0]
    np.testing.assert_allclose(policy.act(o.astype(dtype)), policy.act(o), atol=2e-2)


def test_list_observation_is_accepted(policy):
    o = ref_obs(1)[0]
    np.testing.assert_array_equal(policy.act(o.tolist()), policy.act(o))


@pytest.mark.parametrize(("obs", "message"), [
    (np.zeros(10), r"shape \[10\] does not match the contract: expected \[11\]"),
    (np.zeros((1, 11)), r"expected \[11\] \(pass one observation to act\(\), a batch to act_batch\(\)\)"),
    (np.zeros(11, np.int64), "dtype int64 is wrong: expected a floating-point array"),
    (np.zeros(11, bool), "dtype bool is wrong"),
])
def test_bad_observation_shape_or_dtype(policy, obs, message):
    with pytest.raises(ObservationError, match=message):
        policy.act(obs)


@pytest.mark.filterwarnings("ignore:invalid value encountered in dot:RuntimeWarning")
@pytest.mark.parametrize(("bad", "shown"), [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_non_finite_observation_names_first_index(policy, bad, shown):
    o = ref_obs(1)[0]
    o[4] = bad
    o[7] = np.nan
    with pytest.raises(ObservationError, match=rf"contains {shown} at index \[4\] \(2 non-finite"):
        policy.act(o)
    with pytest.raises(ObservationError, match=r"at sample 0, index \[4\]"):
        policy.act_batch(np.stack([ref_obs(1)[0], o])[1:])


def test_observation_overflowing_float32_is_refused(policy):
    o = ref_obs(1)[0]
    o[2] = 1e300
    with pytest.warns(RuntimeWarning), pytest.raises(ObservationError, match=r"1e\+300 at index \[2\] overflows"):
        policy.act(o)


def test_huge_but_finite_observation_is_not_a_false_alarm(policy):
    o = ref_obs(1)[0]
    o[0] = 3e19  # its square overflows float32: the fast check defers to the exact one
    a = policy.act(o)
    assert np.all(np.isfinite(a))


def test_failed_calls_do_not_corrupt_the_next_one(policy):
    o = ref_obs(1)[0]
    before = policy.act(o)
    with pytest.raises(ObservationError):
        policy.act(np.full(11, np.nan))
    np.testing.assert_array_equal(policy.act(o), before)


def test_actions_are_clipped_into_bounds(make_bundle, tmp_path):
    wild = MLP(seed=4, squash=False, gain=30.0)  # no tanh: raw outputs far beyond the bounds
    obs = ref_obs(64)
    raw = wild.numpy(obs)
    assert np.any(raw < LOW) and np.any(raw > HIGH)
    out = make_bundle(onnx_path=wild.save(tmp_path / "wild.onnx"), reference_obs=obs,
                      reference_actions=np.clip(raw, LOW, HIGH).astype(np.float32))
    with Policy.load(out) as p:
        acts = np.stack([p.act(o) for o in ref_obs(200, seed=11)])
        assert np.all(acts >= LOW.astype(np.float32)) and np.all(acts <= HIGH.astype(np.float32))
        assert np.any(acts == HIGH.astype(np.float32))  # clipping really happened


def test_non_finite_network_output_raises(make_bundle, tmp_path):
    obs = np.abs(ref_obs(8)) + 0.1
    out = make_bundle(onnx_path=log_model(tmp_path / "log.onnx"), reference_obs=obs,
                      reference_actions=np.log(obs[:, :3].astype(np.float32)),
                      contract=contract(low=None, high=None))
    with Policy.load(out) as p:
        o = obs[0].copy()
        o[1] = -1.0  # log(-1) = nan inside the network
        with pytest.raises(ActionError, match="non-finite action"):
            p.act(o)
        with pytest.raises(ActionError, match="sample 1"):
            p.act_batch(np.stack([obs[0], o]))


def test_reference_mismatch_refuses_to_load(make_bundle, mlp):
    obs = ref_obs(16)
    wrong = mlp.numpy(obs) + 1e-3
    out = make_bundle(reference_obs=obs, reference_actions=wrong, check=False)
    with pytest.raises(BundleError, match=r"reference check failed on backend ort-cpu \(fp32\).*atol 1e-05"):
        Policy.load(out)


def test_fp16_profile_tolerance_is_looser(make_bundle, mlp, x86):
    obs = ref_obs(16)
    close = mlp.numpy(obs) + 1e-3  # inside parity_atol_fp16, outside parity_atol
    fp16 = validate_profile({**x86.to_dict(), "precision": "fp16"})
    with Policy.load(make_bundle(reference_obs=obs, reference_actions=close, profile=fp16)):
        pass


def test_discrete_policy_returns_int(make_bundle, tmp_path):
    path, w = discrete_model(tmp_path / "d.onnx", n=4)
    obs = ref_obs(32)
    expected = np.argmax(obs.astype(np.float32) @ w, axis=1)
    out = make_bundle(onnx_path=path, reference_obs=obs, reference_actions=expected,
                      contract=contract(act_shape=(), discrete=True, n=4, low=None, high=None))
    with Policy.load(out) as p:
        a = p.act(obs[5])
        assert type(a) is int and a == expected[5]
        np.testing.assert_array_equal(p.act_batch(obs), expected)
    wrong = expected.copy()
    wrong[:4] = (wrong[:4] + 1) % 4
    with pytest.raises(BundleError, match=r"12.5% of discrete actions differ \(allowed 0.0%\), first at sample 0"):
        make_bundle(onnx_path=path, reference_obs=obs, reference_actions=wrong,
                    contract=contract(act_shape=(), discrete=True, n=4, low=None, high=None))


def test_image_policy_takes_uint8_only(make_bundle, tmp_path):
    path, w = image_model(tmp_path / "img.onnx")
    obs = np.random.default_rng(0).integers(0, 256, (8, 3, 8, 8), dtype=np.uint8)
    expected = np.tanh((obs.reshape(8, -1) / np.float32(255)).astype(np.float32) @ w)
    out = make_bundle(onnx_path=path, reference_obs=obs, reference_actions=expected,
                      contract=contract(obs_shape=(3, 8, 8), obs_dtype="uint8", act_shape=(2,),
                                        low=[-1, -1], high=[1, 1]))
    with Policy.load(out) as p:
        np.testing.assert_allclose(p.act(obs[0]), expected[0], atol=1e-5)
        with pytest.raises(ObservationError, match="dtype float32 is wrong: expected uint8"):
            p.act(obs[0].astype(np.float32) / 255)


def test_contract_shape_must_match_model(make_bundle):
    with pytest.raises(BundleError, match=r"takes \[11\] per sample but contract.json says observation.shape \[12\]"):
        make_bundle(contract=contract(obs_shape=(12,)), reference_obs=np.zeros((2, 12)),
                    reference_actions=np.zeros((2, 3), np.float32), check=True)


def test_stats_count_latency_and_deadline_misses(make_bundle, x86):
    tight = validate_profile({**x86.to_dict(), "latency_budget_us": 0.001, "warmup_runs": 3})
    with Policy.load(make_bundle(profile=tight)) as p:
        assert p.stats()["count"] == 0  # reference check and warm-up are not counted
        for o in ref_obs(25):
            p.act(o)
        s = p.stats()
        assert s["count"] == 25 and s["misses"] == 25 and s["budget_us"] == pytest.approx(0.001)
        assert 0 < s["p50_us"] <= s["p90_us"] <= s["p99_us"] <= s["max_us"]
        assert s["backend"] == "ort-cpu"
        p.reset_stats()
        assert p.stats()["count"] == 0 and p.stats()["p50_us"] is None


def test_latency_window_is_a_ring(bundle):
    with Policy.load(bundle, latency_window=8) as p:
        for o in ref_obs(20):
            p.act(o)
        s = p.stats()
        assert (s["count"], s["window"]) == (20, 8)


def test_load_without_verify_skips_hashing(bundle):
    (bundle / "README.md").write_text("edited on the robot")
    with pytest.raises(BundleError):
        Policy.load(bundle)
    with Policy.load(bundle, verify=False) as p:
        assert p.act(ref_obs(1)[0]).shape == (3,)

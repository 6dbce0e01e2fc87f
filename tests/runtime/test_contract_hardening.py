"""Issue 12 probes 2 and 8: no contract field is trusted unchecked, no bad action leaves act()."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from conftest import HIGH, LOW, MLP, contract, ref_obs

from edgerl.runtime.contract import MAX_ABS_BOUND, parse_contract
from edgerl.runtime.errors import BundleError, ObservationError
from edgerl.runtime.fileio import sha256_file
from edgerl.runtime.policy import Policy


def _with_action(**fields):
    c = contract()
    c["action"].update(fields)
    return c


BAD_CONTRACTS = {
    "nan low": (_with_action(low=[float("nan"), -2.0, 0.0]), r"action.low\[0\] is nan; a bound must be a finite"),
    "nan high": (_with_action(high=[1.0, float("nan"), 3.0]), r"action.high\[1\] is nan"),
    "inf high": (_with_action(high=[1.0, float("inf"), 3.0]), r"action.high\[1\] is inf"),
    "+1e30": (_with_action(high=[1e30, 0.5, 3.0]), r"action.high\[0\] is 1e\+30; .*magnitude at most " + re.escape(f"{MAX_ABS_BOUND:g}")),
    "-1e30": (_with_action(low=[-1e30, -2.0, 0.0]), r"action.low\[0\] is -1e\+30"),
    "null low": (_with_action(low=None), r"action.low must give a number for every entry: the graph rescales"),
    "null entry": (_with_action(high=[1.0, None, 3.0]), r"action.high must give a number for every entry"),
    "inverted": (_with_action(low=[-1.0, 0.6, 0.0]), r"action.low\[1\] = 0.6 is not below action.high\[1\] = 0.5"),
    "equal": (_with_action(low=[-1.0, 0.5, 0.0]), r"action.low\[1\] = 0.5 is not below"),
    "complex dtype": (_with_action(dtype="complex64"), r"action.dtype \(discrete=false\) is 'complex64'; expected one of"),
    "int dtype continuous": (_with_action(dtype="int64"), r"action.dtype \(discrete=false\) is 'int64'"),
    "float dtype discrete": ({**contract(act_shape=(), discrete=True, n=4, low=None, high=None),
                              "action": {**contract(act_shape=(), discrete=True, n=4, low=None, high=None)["action"],
                                         "dtype": "float32"}}, r"action.dtype \(discrete=true\) is 'float32'"),
    "dtype not a string": (_with_action(dtype=None), r"action.dtype .* is None"),
    "object obs dtype": ({**contract(), "observation": {**contract()["observation"], "dtype": "O"}},
                         r"observation.dtype is 'O'"),
    "bound strings": (_with_action(low=["-1", "-2", "0"]), r"action.low must hold numbers or null"),
    "bound bools": (_with_action(low=[True, False, False]), r"action.low must hold numbers or null"),
    "ragged bounds": (_with_action(low=[[-1.0], [-2.0, 0.0]]), r"action.low"),
    "huge shape": (_with_action(shape=[1 << 20, 1 << 20], low=None, high=None), r"has more than"),
    "version true": ({**contract(), "version": True}, r"'version' is True"),
    "baked_in not a list": ({**contract(), "baked_in": True}, r"baked_in must be a list of step names"),
    "n bool": (contract(act_shape=(), discrete=True, n=True, low=None, high=None), r"action.n must be an integer"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONTRACTS))
def test_bad_contract_fields_are_refused(name):
    data, message = BAD_CONTRACTS[name]
    data = json.loads(json.dumps(data))  # exactly what the device reads (NaN/Infinity are JSON extensions)
    with pytest.raises(BundleError, match=message) as e:
        parse_contract(data)
    assert "\n" not in str(e.value) and "re-export the policy" in str(e.value)


def test_unbounded_contract_without_rescale_and_unknown_sections_are_accepted():
    c = contract(low=None, high=None)
    c["x_vendor"] = {"anything": 1}  # optional sections added by other features stay allowed
    parsed = parse_contract(c)
    assert parsed.act_low is None and parsed.act_high is None


def _rewrite(bundle, name, data: bytes) -> None:
    """Change a bundle file and re-hash the manifest (what an attacker without a signing key can do)."""
    (bundle / name).write_bytes(data)
    m = json.loads((bundle / "manifest.json").read_text())
    m["files"][name] = sha256_file(bundle / name)
    (bundle / "manifest.json").write_text(json.dumps(m))


@pytest.mark.parametrize("bound", [float("nan"), 1e30, None])
def test_rehashed_bundle_with_bad_bounds_is_refused_at_load(bundle, bound):
    """The probe: JSON NaN bounds passed `check` and `edgerl run` sent NaN actions."""
    c = json.loads((bundle / "contract.json").read_text())
    c["action"]["high"] = [bound, 0.5, 3.0]
    _rewrite(bundle, "contract.json", json.dumps(c).encode())
    with pytest.raises(BundleError, match=r"contract.json: action.high"):
        Policy.load(bundle)


def test_reference_check_fails_on_nan(bundle):
    """The reference check's `excess > 0` was False for NaN, so a NaN reference passed."""
    with np.load(bundle / "reference.npz") as z:
        obs, act = z["obs"], z["action"].copy()
    act[2, 1] = np.nan
    buf = io.BytesIO()
    np.savez(buf, obs=obs, action=act)
    _rewrite(bundle, "reference.npz", buf.getvalue())
    with pytest.raises(BundleError, match=r"reference check failed .*sample 2"):
        Policy.load(bundle)


def test_reference_with_nan_observation_is_a_bundle_error(bundle):
    with np.load(bundle / "reference.npz") as z:
        obs, act = z["obs"].copy(), z["action"]
    obs[0, 0] = np.nan
    buf = io.BytesIO()
    np.savez(buf, obs=obs, action=act)
    _rewrite(bundle, "reference.npz", buf.getvalue())
    with pytest.raises(BundleError, match=r"reference.npz: reference check failed .*contains nan"):
        Policy.load(bundle)


def test_clipped_actions_never_leave_the_float64_bounds(make_bundle, tmp_path):
    """Bounds such as 0.1 round outwards in float32; the clip uses bounds rounded inwards."""
    low, high = np.array([-0.1, -0.3, 0.7]), np.array([0.1, 0.3, 0.9])
    assert float(np.float32(0.1)) > 0.1 and float(np.float32(-0.1)) < -0.1  # the rounding that would leak
    wild = MLP(squash=False, gain=50.0)
    obs = ref_obs(16)
    out = make_bundle(onnx_path=wild.save(tmp_path / "wild.onnx"), reference_obs=obs,
                      reference_actions=np.clip(wild.numpy(obs), low, high).astype(np.float32),
                      contract=contract(low=low, high=high))
    with Policy.load(out) as p:
        acts = np.stack([p.act(o) for o in ref_obs(100, seed=3)]).astype(np.float64)
        batch = p.act_batch(ref_obs(100, seed=3)).astype(np.float64)
    for a in (acts, batch):
        assert np.all(a >= low) and np.all(a <= high)
        assert np.isfinite(a).all()
    assert np.any(np.isclose(acts, high, atol=1e-7))  # the clip was active


@pytest.mark.parametrize("obs", [
    [[0.0] * 11, [0.0] * 10],  # ragged
    [0.0] * 10 + [[1.0, 2.0]],  # ragged inside
    [object()] * 11,
    "0" * 11,
    None,
    {"a": 1},
])
def test_odd_observations_are_observation_errors(bundle, obs):
    with Policy.load(bundle) as p:
        with pytest.raises(ObservationError) as e:
            p.act(obs)
        assert "\n" not in str(e.value)
        with pytest.raises(ObservationError):
            p.act_batch([obs, obs])


def test_ragged_list_names_the_problem(bundle):
    with Policy.load(bundle) as p:
        with pytest.raises(ObservationError, match=r"observation of type list is not an array .*inhomogeneous"):
            p.act([0.0] * 10 + [[1.0, 2.0]])


def test_bounds_of_the_test_fixture_are_inside_float32():
    assert np.all(LOW.astype(np.float32) == LOW) and np.all(HIGH.astype(np.float32) == HIGH)

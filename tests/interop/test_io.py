"""The ``--io`` description: parsing, its ``io`` section in ``contract.json`` and the runtime's check of it."""

from __future__ import annotations

import copy

import pytest
import torch

from edgerl.errors import BundleError, ConfigError
from edgerl.export.contract import build_contract
from edgerl.export.policy import policy_from_checkpoint
from edgerl.interop import import_policy
from edgerl.interop.io import parse_io
from edgerl.runtime.contract import parse_contract

IO = {"observation": {"terms": [{"name": "vel", "size": 2, "unit": "m/s", "scale": 0.5},
                                {"name": "pos", "size": 3, "unit": "rad"}]},
      "action": {"clip": [-1, 1], "scale": 0.5, "offset": [0.0, 0.1], "joint_names": ["a", "b"]},
      "control_rate_hz": 50}


def _ckpt(tmp_path, io: dict) -> dict:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ELU(), torch.nn.Linear(8, 2))
    torch.save({"model_state_dict": {f"actor.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "m.pt")
    import yaml

    (tmp_path / "io.yaml").write_text(yaml.safe_dump(io))
    payload, _ = import_policy(tmp_path / "m.pt", "rsl_rl", io_path=tmp_path / "io.yaml")
    return payload


def test_io_lands_in_contract_and_is_validated(tmp_path):
    ckpt = _ckpt(tmp_path, IO)
    policy = policy_from_checkpoint(ckpt)
    assert policy.baked_in == ["observation_normalizer", "deterministic_head", "action_clip", "action_scale",
                               "action_offset"]
    contract = build_contract(ckpt, policy, checkpoint="m.pt", sha256="0", steps=None, opset=18, versions={})
    assert contract["io"]["observation"]["terms"][0] == {"name": "vel", "size": 2, "unit": "m/s", "scale": 0.5}
    assert contract["io"]["control_rate_hz"] == 50
    assert contract["action"]["low"] == pytest.approx([-0.5, -0.4]) and contract["action"]["high"] == pytest.approx([0.5, 0.6])
    parsed = parse_contract(contract)
    assert parsed.raw["io"]["action"]["joint_names"] == ["a", "b"]
    bad = copy.deepcopy(contract)
    bad["io"]["observation"]["terms"][1]["size"] = 4
    with pytest.raises(BundleError, match="sum to 6 entries but the observation has 5"):
        parse_contract(bad)
    bad = copy.deepcopy(contract)
    bad["io"]["action"]["joint_names"] = ["a"]
    with pytest.raises(BundleError, match="joint_names must name the 2 action elements"):
        parse_contract(bad)


def test_unbounded_actions_have_null_contract_bounds(tmp_path):
    ckpt = _ckpt(tmp_path, {"control_rate_hz": 100})
    contract = build_contract(ckpt, policy_from_checkpoint(ckpt), checkpoint="m.pt", sha256="0", steps=None,
                              opset=18, versions={})
    assert contract["action"]["low"] is None and contract["action"]["high"] is None  # not a made-up [-1, 1]
    assert parse_contract(contract).act_low is None


@pytest.mark.parametrize(("doc", "match"), [
    ({"observation": {"terms": [{"name": "x", "size": 0}]}}, "size must be a positive integer"),
    ({"action": {"clip": "wide"}}, "action.clip must be a number"),
    ({"actions": {}}, "unknown keys"),
    ({"control_rate_hz": -5}, "control_rate_hz must be > 0"),
    ({"observation": {"terms": [{"name": "x", "scale": float("nan")}]}}, "no NaN"),
    ({"normalizer": {"mean": [0.0]}}, "needs mean and one of var or std"),
])
def test_parse_io_errors(doc, match):
    with pytest.raises(ConfigError, match=match):
        parse_io(doc)


def test_io_action_width_mismatch(tmp_path):
    with pytest.raises(ConfigError, match="action.offset has 3 entries but the network outputs 2 actions"):
        _ckpt(tmp_path, {"action": {"offset": [0, 0, 0]}})


def test_io_observation_ranges_land_in_contract(tmp_path):
    """Per-term plausible ranges: one number broadcast to the term, or one per element; the runtime
    parses them from the contract (its act() check is tested in tests/runtime/test_recurrent.py)."""
    io = copy.deepcopy(IO)
    io["observation"]["terms"][0].update(low=-2, high=[1.5, 2.5])
    io["observation"]["terms"][1].update(high=3.2)
    ckpt = _ckpt(tmp_path, io)
    contract = build_contract(ckpt, policy_from_checkpoint(ckpt), checkpoint="m.pt", sha256="0", steps=None,
                              opset=18, versions={})
    vel, pos = contract["io"]["observation"]["terms"]
    assert vel["low"] == [-2.0, -2.0] and vel["high"] == [1.5, 2.5] and pos["high"] == [3.2] * 3 and "low" not in pos
    ranges = parse_contract(contract).obs_ranges
    assert ranges is not None and ranges.where(3) == "pos[1]"
    assert ranges.low.tolist() == [-2.0, -2.0] + [float("-inf")] * 3 and ranges.high.tolist()[1:] == [2.5] + [3.2] * 3


@pytest.mark.parametrize("term,message", [
    ({"low": [0, 1, 2]}, r"terms\[0\].low \(vel\) must be one finite number or 2 of them"),
    ({"high": ".inf"}, "must be a number or a list of numbers"),
    ({"low": 1, "high": 1}, r"low\[0\] = 1 is not below high\[0\] = 1"),
    ({"lo": 1}, r"terms\[0\] must be \{name, size, unit, scale, low, high\}"),
])
def test_io_bad_observation_range_is_one_line(term, message):
    io = copy.deepcopy(IO)
    io["observation"]["terms"][0].update(term)
    with pytest.raises(ConfigError, match=message) as e:
        parse_io(io)
    assert "\n" not in str(e.value)

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

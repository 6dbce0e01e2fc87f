"""Policy checkpoints (what ``edgerl compact`` writes) and the wrappers built from checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.errors import CheckpointError
from edgerl.export import export_policy, policy_checkpoint_payload, policy_from_checkpoint
from edgerl.export.wrappers import SquashedGaussianPolicy
from edgerl.nets.mlp import SquashedGaussianActor
from edgerl.runtime.contract import read_contract
from tests.export.conftest import HIGH, LOW, make_sac_agent, sac_payload


def _obs(n: int = 32) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(0).normal(2.0, 3.0, size=(n, 11)), dtype=torch.float32)


def _policy_payload(agent, env, train, **deployed_override):
    deployed = {**agent.deployed_nets(), **deployed_override}
    return policy_checkpoint_payload("sac", env, train["config"], deployed, counters=train["counters"],
                                     source={"checkpoint": "ckpt.pt", "sha256": "0" * 64, "kind": "train"})


def test_train_policy_matches_agent(hopper_env):
    agent = make_sac_agent()
    policy = policy_from_checkpoint(sac_payload(agent, hopper_env))
    assert isinstance(policy, SquashedGaussianPolicy) and not policy.training
    obs = _obs()
    with torch.no_grad():
        squashed = agent.actor.deterministic(agent.normalizer(obs))
    low, high = torch.tensor(LOW), torch.tensor(HIGH)
    torch.testing.assert_close(policy(obs), low + (squashed + 1) * 0.5 * (high - low), atol=1e-6, rtol=0)


def test_policy_checkpoint_round_trip(tmp_path, hopper_env):
    agent = make_sac_agent()
    train = sac_payload(agent, hopper_env)
    save_checkpoint(tmp_path / "policy.pt", _policy_payload(agent, hopper_env, train))
    ckpt = load_checkpoint(tmp_path / "policy.pt")
    assert ckpt["kind"] == "policy" and sorted(ckpt["agent"]["nets"]) == ["actor"]
    assert ckpt["agent"]["normalizer"]["spec"] == {"shape": [11], "clip": 10.0, "eps": 1e-8, "enabled": True}
    obs = _obs()
    with torch.no_grad():
        torch.testing.assert_close(policy_from_checkpoint(ckpt)(obs), policy_from_checkpoint(train)(obs),
                                   atol=0, rtol=0)


def test_compacted_policy_checkpoint_round_trip(tmp_path, hopper_env):
    agent = make_sac_agent()
    torch.manual_seed(5)
    narrow = SquashedGaussianActor(11, 3, [20, 9])  # as if compacted to smaller widths
    save_checkpoint(tmp_path / "policy.pt", _policy_payload(agent, hopper_env, sac_payload(agent, hopper_env),
                                                            actor=narrow))
    policy = policy_from_checkpoint(load_checkpoint(tmp_path / "policy.pt"))
    assert policy.nets()["actor"].spec()["hidden"] == [20, 9]
    obs = _obs()
    with torch.no_grad():
        expected = torch.tanh(narrow(agent.normalizer(obs))[0])
    low, high = torch.tensor(LOW), torch.tensor(HIGH)
    torch.testing.assert_close(policy(obs), low + (expected + 1) * 0.5 * (high - low), atol=1e-6, rtol=0)


def test_disabled_normaliser_is_not_baked_in(hopper_env):
    agent = make_sac_agent(obs_norm=False, stats=False)
    train = sac_payload(agent, hopper_env)
    for ckpt in (train, _policy_payload(agent, hopper_env, train)):
        policy = policy_from_checkpoint(ckpt)
        assert policy.normalizer is None
        assert policy.baked_in == ["deterministic_head", "tanh_squash", "action_rescale"]


def test_payload_errors(hopper_env):
    agent = make_sac_agent()
    train = sac_payload(agent, hopper_env)
    with pytest.raises(CheckpointError, match="lack \\['actor'\\]"):
        policy_checkpoint_payload("sac", hopper_env, train["config"], {"normalizer": agent.normalizer})
    with pytest.raises(CheckpointError, match="not registered"):
        policy_checkpoint_payload("sac", hopper_env, train["config"], {"actor": nn.Linear(11, 3)})
    with pytest.raises(CheckpointError, match="would replace"):
        policy_checkpoint_payload("sac", hopper_env, train["config"], agent.deployed_nets(),
                                  extra={"kind": "train"})


def test_checkpoint_errors_are_actionable(hopper_env):
    train = sac_payload(make_sac_agent(), hopper_env)
    with pytest.raises(CheckpointError, match="cannot export 'nosuchalgo' policies"):
        policy_from_checkpoint({**train, "algo": "nosuchalgo"})
    with pytest.raises(CheckpointError, match="cannot export a 'bench' checkpoint"):
        policy_from_checkpoint({**train, "kind": "bench"})
    nets = dict(train["agent"]["nets"])
    del nets["actor"]
    with pytest.raises(CheckpointError, match="lacks nets \\['actor'\\]"):
        policy_from_checkpoint({**train, "agent": {**train["agent"], "nets": nets}})
    bad = dict(train["agent"]["nets"])
    bad["actor"] = {**bad["actor"], "spec": {"type": "sac_actor", "kwargs": {"obs_dim": 11, "act_dim": 3,
                                                                             "hidden": [16, 16]}}}
    with pytest.raises(CheckpointError, match="does not match its spec"):
        policy_from_checkpoint({**train, "agent": {**train["agent"], "nets": bad}})


def test_ofenet_policy_bakes_in_the_state_block(tmp_path, hopper_env):
    from edgerl.algos.sac import SACAgent, SACConfig

    torch.manual_seed(0)
    cfg = SACConfig(hidden=[16, 16], obs_norm=True, ofenet=True, ofenet_layers=2, ofenet_units=8)
    agent = SACAgent(cfg, obs_dim=11, act_dim=3)
    agent.normalizer.update(torch.randn(100, 11, dtype=torch.float64) * 2 + 1)
    train = sac_payload(agent, hopper_env)
    policy = policy_from_checkpoint(train)
    assert sorted(policy.nets()) == ["actor", "ofenet_state"]
    assert policy.baked_in == ["observation_normalizer", "feature_extractor", "deterministic_head",
                               "tanh_squash", "action_rescale"]
    obs = _obs()
    with torch.no_grad():
        squashed = agent.actor.deterministic(agent.features(agent.normalizer(obs)))
    low, high = torch.tensor(LOW), torch.tensor(HIGH)
    torch.testing.assert_close(policy(obs), low + (squashed + 1) * 0.5 * (high - low), atol=1e-6, rtol=0)
    payload = _policy_payload(agent, hopper_env, train)
    assert sorted(payload["agent"]["nets"]) == ["actor", "ofenet_state"]
    save_checkpoint(tmp_path / "policy.pt", payload)
    report = export_policy(tmp_path / "policy.pt", recorded_steps=64)
    assert report.parity.worst <= 1e-5 and "feature_extractor" in report.baked_in
    raw = read_contract(report.contract_path).raw
    assert raw["source"]["kind"] == "policy" and raw["source"]["steps"] == 4321

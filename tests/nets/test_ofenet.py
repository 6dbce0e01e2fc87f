"""OFENet: spec round trip, pruning through its concats, BatchNorm folding, and SAC on its
features (SAC's gradients reach the action but never OFENet's weights)."""

from __future__ import annotations

import copy

import pytest
import torch

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.algos.sac_train import ofenet_pretrain_steps
from edgerl.nets import build_net, net_spec
from edgerl.nets.ofenet import FeatureQNetwork, OFENet, OFEStateBlock
from edgerl.prune import layer_widths
from edgerl.prune.graph import PruneGraph

OBS, ACT = 11, 3


def _randomize_bn(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.5 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return net.eval()


def test_dimensions_and_spec_round_trip():
    torch.manual_seed(0)
    net = _randomize_bn(OFENet(OBS, ACT, [4, 5, 6], [3, 2], target_dim=7))
    assert net.state_dim == OBS + 15 and net.state_action_dim == OBS + 15 + ACT + 5
    obs, act = torch.randn(8, OBS), torch.rand(8, ACT)
    assert net(obs, act).shape == (8, 7)
    assert net.state_features(obs).shape == (8, net.state_dim)
    assert net.action_features(net.state_features(obs), act).shape == (8, net.state_action_dim)
    for module in (net, net.state_block, FeatureQNetwork(net.state_action_dim, [8, 6])):
        clone = build_net(net_spec(module))
        assert net_spec(clone) == net_spec(module)
        clone.load_state_dict(module.state_dict())
        clone.eval()
        args = module.example_inputs(4)
        torch.testing.assert_close(clone(*args), module(*args))
    with pytest.raises(ValueError, match="target_dim"):
        OFENet(OBS, ACT, [4], [4], target_dim=OBS + 1)


@pytest.mark.parametrize("layer", ["state_block.layers.0.fc", "state_block.layers.2.fc", "action_layers.0.fc"])
def test_pruning_through_the_concats_equals_zeroed_units(layer: str):
    """Raw observation and action pass through InputScale before any concat (torch-pruning issue
    #481): the graph builds in strict mode and a pruned unit equals that unit zeroed."""
    torch.manual_seed(1)
    net = _randomize_bn(OFENet(OBS, ACT, [4, 5, 6], [3, 2]))
    graph = PruneGraph(net, net.example_inputs(4), keep=net.heads())
    assert {g.key for g in graph.groups()} == {k for k in net.gate_sites()}
    zeroed = copy.deepcopy(net)
    idx = [0, 2]
    with torch.no_grad():  # gamma and beta zero -> the unit outputs silu(0) = 0 in every mode
        bn = zeroed.get_submodule(layer.replace(".fc", ".bn"))
        bn.weight[idx] = 0
        bn.bias[idx] = 0
    graph.prune(layer, idx)
    assert net.get_submodule(layer).out_features == zeroed.get_submodule(layer).out_features - 2
    obs, act = torch.randn(16, OBS), torch.rand(16, ACT)
    for train in (False, True):
        net.train(train)
        zeroed.train(train)
        torch.testing.assert_close(net(obs, act), zeroed(obs, act), atol=1e-5, rtol=0)
    rebuilt = build_net(net_spec(net))
    rebuilt.load_state_dict(net.state_dict())
    assert layer_widths(rebuilt) == layer_widths(net)


def test_fold_for_deploy_keeps_the_eval_function_and_rebuilds():
    torch.manual_seed(2)
    block = _randomize_bn(OFEStateBlock(OBS, [4, 5]))
    obs = torch.randn(32, OBS)
    before = block(obs)
    block.fold_for_deploy()
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in block.modules())
    torch.testing.assert_close(block(obs), before, atol=1e-5, rtol=0)
    clone = build_net(net_spec(block))
    clone.load_state_dict(block.state_dict())
    torch.testing.assert_close(clone(obs), before, atol=1e-5, rtol=0)


def _agent(**kw) -> SACAgent:
    torch.manual_seed(0)
    return SACAgent(SACConfig(hidden=[16, 16], ofenet=True, ofenet_layers=2, ofenet_units=6, **kw), OBS, ACT)


def _batch(n: int = 32) -> dict[str, torch.Tensor]:
    return {"obs": torch.randn(n, OBS), "next_obs": torch.randn(n, OBS), "actions": torch.rand(n, ACT) * 2 - 1,
            "rewards": torch.randn(n), "terminated": torch.zeros(n)}


def test_sac_reads_features_and_its_gradients_never_reach_ofenet():
    agent = _agent()
    assert agent.actor.spec()["obs_dim"] == agent.ofenet.state_dim
    assert agent.qf1.spec()["in_dim"] == agent.ofenet.state_action_dim
    obs = torch.randn(8, OBS)
    s = agent.features(obs)
    pi = torch.rand(8, ACT, requires_grad=True)
    agent.qf1(*agent.critic_input(s, pi)).sum().backward()
    assert pi.grad is not None and pi.grad.abs().sum() > 0  # dQ/da flows through the action block
    assert all(p.grad is None for p in agent.ofenet.parameters())
    ofenet_before = copy.deepcopy(agent.ofenet.state_dict())
    ofe_pred_before = None
    with torch.no_grad():
        ofe_pred_before = agent.ofenet(obs, pi.detach())
    batch = _batch()
    metrics = agent.update(batch)
    assert "ofe_loss" in metrics and agent.ofenet_updates == 1
    assert not agent.ofenet.training and not any(p.requires_grad for p in agent.ofenet.parameters())
    changed = [k for k, v in agent.ofenet.state_dict().items() if not torch.equal(v, ofenet_before[k])]
    assert changed  # the auxiliary update trained it (and updated BN running statistics)
    with torch.no_grad():
        assert not torch.equal(agent.ofenet(obs, pi.detach()), ofe_pred_before)
    # Batch-1 acting uses BN running statistics.
    assert agent.act(obs[0].numpy()).shape == (ACT,)
    assert agent.act(obs[0].numpy(), deterministic=True).shape == (ACT,)


def test_ofenet_prediction_loss_falls():
    agent = _agent(ofenet_lr=3e-3)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(OBS + ACT, OBS, generator=g) * 0.3
    losses = []
    for _ in range(150):
        obs, act = torch.randn(64, OBS, generator=g), torch.rand(64, ACT, generator=g)
        losses.append(float(agent.update_ofenet({"obs": obs, "actions": act,
                                                 "next_obs": torch.cat([obs, act], -1) @ a})["ofe_loss"]))
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])


def test_state_round_trip_and_deployed_nets():
    agent = _agent()
    agent.update(_batch())
    state = agent.state()
    assert {"ofenet", "ofenet_state"} <= set(state["nets"]) and "ofenet" in state["optim"]
    again = SACAgent(agent.cfg, OBS, ACT)
    again.load_state(state)
    assert again.ofenet_updates == 1
    deployed = again.deployed_nets()
    assert list(deployed) == ["normalizer", "ofenet_state", "actor"]
    block = build_net(state["nets"]["ofenet_state"]["spec"])
    block.load_state_dict(state["nets"]["ofenet_state"]["state"])
    block.eval()
    obs = torch.randn(5, OBS)
    with torch.no_grad():
        torch.testing.assert_close(block(obs), agent.features(obs))
        torch.testing.assert_close(again.actor.deterministic(again.features(obs)),
                                   agent.actor.deterministic(agent.features(obs)))
    plain = SACAgent(SACConfig(hidden=[16, 16]), OBS, ACT)
    with pytest.raises(Exception, match="OFENet"):
        plain.load_state(state)


def test_pretraining_phase_shrinks_with_the_warm_up():
    assert ofenet_pretrain_steps(SACConfig(learning_starts=10_000, ofenet_pretrain_steps=10_000)) == 10_000
    assert ofenet_pretrain_steps(SACConfig(learning_starts=100, batch_size=32, ofenet_pretrain_steps=10_000)) == 100
    assert ofenet_pretrain_steps(SACConfig(learning_starts=0, batch_size=64)) == 64
    assert ofenet_pretrain_steps(SACConfig(learning_starts=20_000, ofenet_pretrain_steps=0)) == 0


def test_joint_module_for_gradual_pruning_with_ofenet():
    """With OFENet, prunable() is one joint entry, so that group pruning also removes the input
    columns of the actor and critics that read a removed feature."""
    agent = _agent()
    (entry,) = agent.prunable().values()
    graph = PruneGraph(entry["model"], entry["example_inputs"], keep=entry["heads"], twins=entry["twins"])
    info = graph.group("ofenet.state_block.layers.0.fc")
    assert {"actor.trunk.0", "qf1.trunk.0", "qf2.trunk.0", "ofenet.head"} <= set(info.in_layers)
    graph.prune("ofenet.state_block.layers.0.fc", [1], list(agent.optimizers().values()))
    agent.after_surgery()
    assert agent.actor.spec()["obs_dim"] == agent.ofenet.state_dim == OBS + 5 + 6
    assert agent.qf1_target.spec() == agent.qf1.spec()
    agent.update(_batch())
    again = SACAgent(agent.cfg, OBS, ACT)
    again.load_state(agent.state())

"""The expected parameter count C(theta): exact at 0/1 gates, the Monte Carlo mean of sampled
counts at fractional gates, per-unit weights that follow the DenseNet connectivity."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.config import PruneConfig
from edgerl.prune.cost import CostModel, cost_scope, deploy_scope, exact_count, expected_widths
from edgerl.prune.gate_hook import GateHook

OBS, ACT = 11, 3


def _hook(ofenet: bool, cost: str = "train", seed: int = 0) -> tuple[SACAgent, GateHook]:
    torch.manual_seed(seed)
    agent = SACAgent(SACConfig(hidden=[12, 10], ofenet=ofenet, ofenet_layers=3, ofenet_units=5), OBS, ACT)
    prune = PruneConfig(prune="gates", gate_cost=cost, prune_start=0.0, prune_end=1.0, prune_every=1)
    return agent, GateHook(agent, prune, total_steps=100)


def _random_mask(widths: dict[str, int], g: torch.Generator) -> dict[str, torch.Tensor]:
    """0/1 gates, at least one open unit per group."""
    masks = {}
    for k, w in widths.items():
        m = (torch.rand(w, generator=g) < 0.6).float()
        m[int(torch.randint(w, (1,), generator=g))] = 1.0
        masks[k] = m
    return masks


@pytest.mark.parametrize("ofenet", [False, True], ids=["mlp", "ofenet"])
@pytest.mark.parametrize("cost", ["train", "deploy"])
def test_cost_is_exact_at_binary_gates(ofenet: bool, cost: str):
    agent, hook = _hook(ofenet, cost)
    model = hook.pruner.graph.model
    scope = cost_scope(cost)
    assert hook.pruner.expected_cost() == exact_count(model, scope) == hook.pruner.dense_cost
    g = torch.Generator().manual_seed(1)
    theta = hook.pruner.gates.theta
    with torch.no_grad():
        for k, m in _random_mask(hook.widths(), g).items():
            theta[k].copy_(m)
    predicted = hook.pruner.expected_cost()
    hook.pruner.remove_closed()
    assert predicted == exact_count(model, scope)  # the network with the closed units removed
    assert hook.pruner.expected_cost() == predicted  # the rebuilt cost model agrees
    if cost == "deploy":
        deployed = [m for n, m in agent.deployed_nets().items() if n != "normalizer"]
        log_std = sum(p.numel() for p in agent.actor.log_std.parameters())
        assert predicted == sum(p.numel() for m in deployed for p in m.parameters()) - log_std


def _sampled_count(model: nn.Module, gates, scope, obs: torch.Tensor, act: torch.Tensor) -> int:
    """Parameters alive in the network the current 0/1 gates select, counted from the data flow
    (independently of the cost model): a weight is alive if its row's unit is open and its input
    column carries a signal; a bias or BatchNorm entry if its unit is open."""
    seen: dict[str, torch.Tensor] = {}
    names = {m: n for n, m in model.named_modules()}

    def record(m, inputs, out):
        seen[names[m]] = inputs[0].detach().abs().sum(0) > 0

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(obs, act)
    for h in handles:
        h.remove()
    rows = {k: t.detach() > 0 for k, t in gates.theta.items()}
    total = 0
    for name, m in model.named_modules():
        if scope is not None and not scope(name):
            continue
        if isinstance(m, nn.Linear):
            out = rows.get(name, torch.ones(m.out_features, dtype=torch.bool))
            if name.endswith("act_in") and name.replace("act_in", "obs_in") in rows:  # Q's split first layer
                out = rows[name.replace("act_in", "obs_in")]
            total += int(out.sum()) * (int(seen[name].sum()) + (m.bias is not None))
        elif isinstance(m, nn.BatchNorm1d):
            total += 2 * int(rows[name.replace(".bn", ".fc")].sum())
        else:
            total += sum(p.numel() for p in m.parameters(recurse=False))
    return total


@pytest.mark.parametrize("ofenet", [False, True], ids=["mlp", "ofenet"])
def test_cost_is_the_mean_of_sampled_counts(ofenet: bool):
    agent, hook = _hook(ofenet)
    model, gates = hook.pruner.graph.model, hook.pruner.gates
    g = torch.Generator().manual_seed(2)
    probs = {k: torch.rand(t.numel(), generator=g) for k, t in gates.theta.items()}
    predicted = hook.pruner.cost.expected(expected_widths(probs))
    obs, act = 3 * torch.randn(64, OBS), torch.rand(64, ACT) * 2 - 1
    if agent.ofenet is not None:
        agent.ofenet.train()  # batch statistics: every open unit carries a signal
    counts = []
    with torch.no_grad():
        for t in gates.theta.values():  # dense: the data-flow count matches the exact count
            t.fill_(1.0)
    assert _sampled_count(model, gates, None, obs, act) == exact_count(model)
    for _ in range(300):
        with torch.no_grad():
            for k, t in gates.theta.items():
                t.copy_((torch.rand(t.numel(), generator=g) < probs[k]).float())
        counts.append(_sampled_count(model, gates, None, obs, act))
    counts_t = torch.tensor(counts, dtype=torch.float64)
    stderr = counts_t.std() / len(counts) ** 0.5
    assert abs(counts_t.mean() - predicted) < 4 * stderr, (counts_t.mean(), predicted, stderr)


def test_unit_weights_are_the_exact_derivative_and_follow_the_densenet_connectivity():
    _, hook = _hook(ofenet=True)
    cost = hook.pruner.cost
    g = torch.Generator().manual_seed(3)
    widths = {k: float(torch.rand(1, generator=g)) * w for k, w in hook.widths().items()}
    weights = cost.unit_weights(widths)
    for k in widths:  # C is linear in each group's expected width: a unit step is the derivative
        bumped = {**widths, k: widths[k] + 1.0}
        assert cost.expected(bumped) - cost.expected(widths) == pytest.approx(weights[k], rel=1e-9)
    # At full widths (obs 11, act 3, 3 x 5 units per block, actor/critics 12-10): a state-block
    # unit of layer l costs its fan-in 11 + 5 l, a bias and two BN entries, and one weight in
    # every layer that reads it: the later state layers, 3 x 5 action-block units, the 11-wide
    # head and the 12-wide first layers of actor, qf1 and qf2. Early units are read by more
    # layers, late ones read more: with equal widths the two balance.
    weights = cost.unit_weights(hook.widths())
    for layer in range(3):
        fan_in, readers = 11 + 5 * layer, 5 * (2 - layer) + 15 + 11 + 3 * 12
        assert weights[f"ofenet.state_block.layers.{layer}.fc"] == fan_in + 3 + readers == 86
    assert weights["ofenet.action_layers.0.fc"] == (11 + 15 + 3) + 3 + 5 * 2 + 11 + 2 * 12
    assert weights["actor.trunk.0"] == (11 + 15) + 1 + 10 and weights["actor.trunk.2"] == 12 + 1 + 2 * ACT


def test_deploy_cost_counts_state_block_and_actor_mean_head_only():
    _, hook = _hook(ofenet=True, cost="deploy")
    weights = hook.pruner.cost.unit_weights(hook.widths())
    assert all(weights[k] == 0 for k in weights if k.startswith(("qf", "ofenet.action")))
    assert all(weights[k] > 0 for k in weights if k.startswith(("actor", "ofenet.state")))
    assert deploy_scope("actor.mean") and not deploy_scope("actor.log_std")
    assert not deploy_scope("ofenet.head") and deploy_scope("ofenet.state_block.obs_in")


def test_cost_model_refuses_gated_layers_it_cannot_count():
    from edgerl.errors import ConfigError

    class Group:
        key, width, out_layers, in_layers = "0", 4, ("0",), ("1",)

    model = nn.Sequential(nn.Linear(3, 4), nn.Conv1d(4, 2, 1))
    with pytest.raises(ConfigError, match="cannot count"):
        CostModel.from_groups(model, [Group()])
    with pytest.raises(ConfigError, match="gate-cost"):
        cost_scope("robot")

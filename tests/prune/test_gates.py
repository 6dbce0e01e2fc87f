"""Bernoulli unit gates: the straight-through estimator against exact enumeration, a toy
regression whose useless units close, removal == closed gate, and plain deployed networks."""

from __future__ import annotations

import io
import itertools

import pytest
import torch
from prune_toys import randomize
from torch import nn

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.config import PruneConfig
from edgerl.nets import build_net, net_spec
from edgerl.prune.gate_hook import GateHook, GatePruner
from edgerl.prune.gates import DRAWS, REMOVE_AT, GateSet, apply_gates, fold_gates, sample_gates

OBS, ACT = 11, 3


# ----------------------------------------------------------------------------- the estimator
def _enumerate(loss, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact d E[L]/d theta and the exact expectation of the straight-through estimate, by
    summing over all 2^n gate patterns."""
    n = theta.numel()
    exact = torch.zeros(n, dtype=torch.float64)
    st = torch.zeros(n, dtype=torch.float64)
    for bits in itertools.product((0.0, 1.0), repeat=n):
        xi = torch.tensor(bits, dtype=torch.float64, requires_grad=True)
        p_each = torch.where(xi.detach() > 0, theta, 1 - theta)
        prob = p_each.prod()
        value = loss(xi)
        (dl_dxi,) = torch.autograd.grad(value, xi)
        st += prob * dl_dxi
        for i in range(n):  # dP/dtheta_i = P / p_i * (+1 if xi_i else -1)
            sign = 1.0 if bits[i] else -1.0
            exact[i] += value.detach() * sign * torch.prod(torch.cat([p_each[:i], p_each[i + 1:]]))
    return exact, st


THETA = torch.tensor([0.9, 0.3, 0.6], dtype=torch.float64)
H = torch.tensor([1.5, -0.7, 2.0], dtype=torch.float64)
W = torch.tensor([0.8, 1.3, -0.4], dtype=torch.float64)


def test_straight_through_is_exact_for_a_loss_linear_in_the_gates():
    exact, st = _enumerate(lambda xi: (W * H * xi).sum() + 0.3, THETA)
    assert torch.allclose(st, exact, atol=1e-12)


def test_straight_through_bias_for_a_quadratic_loss_is_theta_minus_half_times_curvature():
    # A unit feeding a linear head under MSE: L = (w . (h * xi) - y)^2, d2L/dxi_i^2 = 2 (w_i h_i)^2.
    exact, st = _enumerate(lambda xi: ((W * H * xi).sum() - 0.5) ** 2, THETA)
    curvature = 2 * (W * H) ** 2
    assert torch.allclose(st - exact, (THETA - 0.5) * curvature, atol=1e-12)
    assert torch.allclose(st[THETA == 0.5], exact[THETA == 0.5])  # exact at theta = 1/2


def test_sampled_gates_average_to_the_enumerated_estimate():
    """The implementation (per-sample Bernoulli, straight-through) against the enumeration, for a
    nonlinear loss: the Monte Carlo mean of theta.grad over a large batch converges to it."""
    def loss(xi: torch.Tensor) -> torch.Tensor:
        return torch.tanh((W * H * xi).sum() - 0.2) ** 2

    _, st = _enumerate(loss, THETA)
    torch.manual_seed(0)
    theta = nn.Parameter(THETA.clone())
    n = 200_000
    h = H.expand(n, 3)
    xi = sample_gates(theta, h, grad=True)
    assert set(xi.detach().unique().tolist()) <= {0.0, 1.0}
    batch_loss = torch.tanh((W * h * xi).sum(-1) - 0.2) ** 2
    batch_loss.mean().backward()
    # d mean_b L_b / d theta = mean_b dL_b/dxi_b * 1 -> the straight-through expectation.
    assert torch.allclose(theta.grad, st, atol=0.01)
    assert abs(xi.detach().mean(0) - THETA).max() < 0.01


def test_a_minibatch_shares_draws_gate_patterns_round_robin():
    torch.manual_seed(0)
    theta = nn.Parameter(torch.full((7,), 0.5))
    out = torch.ones(4 * DRAWS, 7)
    xi = apply_gates(out, theta, grad=True)
    assert torch.equal(xi[:DRAWS], xi[DRAWS:2 * DRAWS]) and not torch.equal(xi[:DRAWS], xi[:DRAWS].flip(0))
    xi.sum().backward()  # straight-through: d/dtheta = sum over samples of dL/dxi * out
    assert torch.equal(theta.grad, torch.full((7,), 4.0 * DRAWS))
    odd = apply_gates(torch.ones(DRAWS + 3, 7), theta, grad=False)  # not a multiple: per sample
    assert odd.shape == (DRAWS + 3, 7) and set(odd.unique().tolist()) <= {0.0, 1.0}


# ----------------------------------------------------------------------------- toy regression
class Toy(nn.Module):
    """x (16) -> 16 hidden units -> y. Unit i reads only x[i] (a fixed wiring); the target needs
    x[0..7], so units 0..7 are each indispensable and units 8..15 (noise inputs) are useless."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.act = nn.ReLU()
        self.out = nn.Linear(16, 1)
        with torch.no_grad():  # unit i starts as relu(x_i): only the head has to learn
            self.fc.weight.copy_(torch.eye(16))
            self.fc.bias.zero_()

    def gate_sites(self) -> dict[str, str]:
        return {"fc": "act"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.fc(x)))

    @torch.no_grad()
    def cut_wires(self, ids: list[int]) -> None:
        """Zero every weight but the one from input ids[i] to unit i (ids: original unit numbers)."""
        mask = torch.zeros_like(self.fc.weight, dtype=torch.bool)
        mask[torch.arange(len(ids)), torch.tensor(ids)] = True
        self.fc.weight[~mask] = 0


def _target(x: torch.Tensor) -> torch.Tensor:
    return (torch.relu(x[:, :8]) * torch.linspace(1.0, 2.0, 8)).sum(-1, keepdim=True)


def test_toy_regression_closes_useless_units_and_keeps_useful_ones():
    torch.manual_seed(0)
    model = Toy()
    ids = list(range(16))
    model.cut_wires(ids)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    pruner = GatePruner(model, torch.zeros(2, 16), keep=[model.out], lam=3e-3,
                        optimizers=lambda: [opt], lr=2e-2, remove_every=10)
    for _ in range(1000):
        x = torch.randn(256, 16)
        loss = nn.functional.mse_loss(model(x), _target(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
        removed = pruner.step()
        for idx in (removed or {}).values():
            ids = [u for i, u in enumerate(ids) if i not in set(idx)]
        model.cut_wires(ids)
    theta = pruner.gates.theta["fc"].detach()
    assert ids == list(range(8)), f"survivors {ids} with theta {theta}"
    assert theta.min() > 0.9, theta
    assert model.fc.out_features == 8 == model.out.in_features
    with pruner.gates.deterministic():
        x = torch.randn(1024, 16)
        final = nn.functional.mse_loss(model(x), _target(x))
    assert final < 0.05 * _target(x).var()


# ----------------------------------------------------------------------------- SAC networks
def _agent(ofenet: bool, seed: int = 0) -> SACAgent:
    torch.manual_seed(seed)
    cfg = SACConfig(hidden=[12, 10], ofenet=ofenet, ofenet_layers=3, ofenet_units=5)
    agent = SACAgent(cfg, OBS, ACT)
    for net in (agent.ofenet, agent.actor, agent.qf1, agent.qf2, agent.qf1_target, agent.qf2_target):
        if net is not None:
            randomize(net, seed + 1)
    return agent


def _hook(agent: SACAgent, cost: str = "train", start: float = 0.0, end: float = 1.0,
          actor_grad: bool = True) -> GateHook:
    prune = PruneConfig(prune="gates", gate_cost=cost, gate_lambda=1e-3, prune_every=1, prune_start=start,
                        prune_end=end, gate_actor_grad=actor_grad)
    return GateHook(agent, prune, total_steps=100)


def _outputs(agent: SACAgent, hook: GateHook, obs: torch.Tensor, act: torch.Tensor) -> list[torch.Tensor]:
    entry = agent.joint_prunable()
    with torch.no_grad():
        online = list(entry["model"](obs, act))
        s_next = agent.features(obs)
        x = agent.critic_input(s_next, act)
        targets = [agent.qf1_target(*x), agent.qf2_target(*x)]
    return online + targets


@pytest.mark.parametrize("ofenet", [False, True], ids=["mlp", "ofenet"])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_removed_units_equal_closed_gates(ofenet: bool, mode: str):
    agent = _agent(ofenet)
    hook = _hook(agent)
    theta = hook.pruner.gates.theta
    closed = {k: [0, t.numel() - 1] for k, t in theta.items()}  # first and last unit of every layer
    with torch.no_grad():
        for k, idx in closed.items():
            theta[k][idx] = 0.0
    if agent.ofenet is not None:
        agent.ofenet.train(mode == "train")  # BN on batch or running statistics
    obs, act = torch.randn(32, OBS), torch.rand(32, ACT) * 2 - 1
    torch.manual_seed(5)
    before = _outputs(agent, hook, obs, act)  # gates sampled, but theta is 0/1: deterministic
    removed = hook.pruner.remove_closed()
    assert removed == closed
    assert all(t.numel() == w for t, w in zip(theta.values(), hook.widths().values(), strict=True))
    after = _outputs(agent, hook, obs, act)
    with hook.pruner.gates.deterministic():
        plain = _outputs(agent, hook, obs, act)
    for b, a, p in zip(before, after, plain, strict=True):
        assert torch.allclose(b, a, atol=1e-5) and torch.allclose(b, p, atol=1e-5)
    # The nets rebuild from their specs at the new widths (targets mirror the online critics).
    assert agent.qf1_target.spec() == agent.qf1.spec()
    for net in (agent.actor, agent.qf1, *([agent.ofenet] if ofenet else [])):
        clone = build_net(net_spec(net))
        clone.load_state_dict(net.state_dict())


def test_gates_follow_the_gradients_of_their_own_network():
    """A frozen network's gates get no gradient (SAC's actor loss must not train the critics'
    gates, SAC's losses must not train OFENet's); deterministic mode is the plain network."""
    agent = _agent(ofenet=True)
    hook = _hook(agent)
    theta = hook.pruner.gates.theta
    obs, act = torch.randn(16, OBS), torch.rand(16, ACT)
    agent._critics_requires_grad(False)
    s = agent.features(obs)
    pi, _ = agent.actor.sample(s)
    agent.qf1(*agent.critic_input(s, pi)).sum().backward()
    agent._critics_requires_grad(True)
    has_grad = {k for k, t in theta.items() if t.grad is not None}
    assert has_grad == {"actor.trunk.0", "actor.trunk.2"}
    for t in theta.values():
        t.grad = None
    agent.update_ofenet({"obs": obs, "next_obs": obs, "actions": act})
    assert {k for k, t in theta.items() if t.grad is not None} == {
        k for k in theta if k.startswith("ofenet.")}
    with torch.no_grad():
        for t in theta.values():
            t.fill_(0.5)
    with hook.pruner.gates.deterministic():
        gated = agent.actor(agent.features(obs))[0]
    hook.pruner.gates.remove_hooks()
    assert torch.equal(gated, agent.actor(agent.features(obs))[0])


def test_actor_loss_reaches_the_state_block_gates_but_not_ofenets_weights():
    """--gate-actor-grad: OFENet's state-block gates also learn from the actor's loss; OFENet's
    weights, its action block's gates and the critics' gates see the same gradients as without."""
    batch = {"obs": torch.randn(32, OBS), "next_obs": torch.randn(32, OBS), "actions": torch.rand(32, ACT),
             "rewards": torch.randn(32), "terminated": torch.zeros(32)}
    grads, weights = {}, {}
    for reach in (False, True):
        agent = _agent(ofenet=True)
        hook = _hook(agent, actor_grad=reach)
        assert agent.actor_gate_reach == ("ofenet.state_block." if reach else None)
        torch.manual_seed(7)
        agent.update(batch)
        grads[reach] = {k: t.grad.clone() for k, t in hook.pruner.gates.theta.items() if t.grad is not None}
        weights[reach] = {k: v.clone() for k, v in agent.ofenet.state_dict().items()}
    assert set(grads[True]) == set(grads[False])
    state = [k for k in grads[True] if k.startswith("ofenet.state_block.")]
    assert len(state) == 3
    for k in state:  # the actor's loss adds its share
        assert not torch.allclose(grads[True][k], grads[False][k], atol=1e-7), k
    for k in grads[True]:
        if k.startswith("ofenet.action_layers."):  # only OFENet's prediction loss, which runs first
            assert torch.equal(grads[True][k], grads[False][k]), k
    for k, v in weights[True].items():
        assert torch.equal(v, weights[False][k]), k


def test_gates_reaching_a_frozen_layer_train_theta_only():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 1)).requires_grad_(False)
    gates = GateSet(net, {"0": "1"})
    x = torch.randn(8, 4)
    assert not net(x).requires_grad  # frozen weights: no straight-through gradient
    with gates.reaching("0"):
        net(x).sum().backward()
    assert gates.theta["0"].grad is not None and bool(gates.theta["0"].grad.abs().sum() > 0)
    assert all(p.grad is None for p in net.parameters())
    with gates.reaching("1"):  # another prefix: no gradient
        assert not net(x).requires_grad


def test_twins_are_gated_by_the_mean():
    torch.manual_seed(0)
    net, twin = nn.Sequential(nn.Linear(4, 6), nn.ReLU()), nn.Sequential(nn.Linear(4, 6), nn.ReLU())
    twin.load_state_dict(net.state_dict())
    gates = GateSet(net, {"0": "1"}, twins=[twin])
    with torch.no_grad():
        gates.theta["0"].copy_(torch.linspace(0, 1, 6))
    x = torch.randn(5, 4)
    plain = torch.relu(net[0](x))
    assert torch.allclose(twin(x), plain * gates.theta["0"].detach())
    with gates.deterministic():
        assert torch.equal(twin(x), plain) and torch.equal(net(x), plain)


def test_sac_update_with_gates_runs_and_keeps_theta_in_unit_interval():
    agent = _agent(ofenet=True)
    hook = _hook(agent)
    batch = {"obs": torch.randn(32, OBS), "next_obs": torch.randn(32, OBS), "actions": torch.rand(32, ACT),
             "rewards": torch.randn(32), "terminated": torch.zeros(32)}
    for step in range(5):
        agent.update(batch)
        metrics = hook.after_update(agent, step + 1)
    assert 0 < metrics["prune_ratio"] < 0.05 and metrics["gate_params"] > 0
    for t in hook.pruner.gates.theta.values():
        assert t.grad is None and 0.0 <= float(t.detach().min()) and float(t.detach().max()) <= 1.0
    assert hook.after_update(agent, 6) == metrics  # no update, no gate step


def test_gates_learn_only_inside_the_pruning_window():
    agent = _agent(ofenet=False)
    hook = _hook(agent, start=0.1, end=0.2)  # steps 10..19 of 100
    batch = {"obs": torch.randn(32, OBS), "next_obs": torch.randn(32, OBS), "actions": torch.rand(32, ACT),
             "rewards": torch.randn(32), "terminated": torch.zeros(32)}
    theta = hook.pruner.gates.theta
    with torch.no_grad():
        theta["actor.trunk.0"][0] = 0.0  # closed, removed at the next removal step
    assert not hook.pruner.active
    agent.update(batch)
    assert all(t.grad is None for t in theta.values())  # before the window: no sampling, no gradient
    hook.after_update(agent, 9)
    assert hook.widths()["actor.trunk.0"] == 12
    hook.after_update(agent, 10)
    assert hook.pruner.active
    agent.update(batch)
    hook.after_update(agent, 11)
    assert hook.widths()["actor.trunk.0"] == 11 and hook.history[-1][0] == 11
    with torch.no_grad():
        theta["qf1.obs_in"][[1, 2]] = 0.005
    agent.update(batch)
    hook.after_update(agent, 20)  # the end: closed units go, every survivor passes from now on
    assert hook.finished and not hook.pruner.active and hook.widths()["qf1.obs_in"] == 10
    agent.update(batch)
    assert all(t.grad is None for t in theta.values())


# ----------------------------------------------------------------------------- deployment
def test_fold_gates_gives_plain_deployed_nets_equal_to_the_gated_policy():
    agent = _agent(ofenet=True)
    hook = _hook(agent, cost="deploy")
    theta = hook.pruner.gates.theta
    with torch.no_grad():
        theta["ofenet.state_block.layers.0.fc"][[1, 3]] = REMOVE_AT / 2  # closed but not yet removed
        theta["actor.trunk.0"][[0, 5, 7]] = 0.0
        theta["actor.trunk.2"][2] = 0.3  # open: passes with xi = 1
    deployed = agent.deployed_nets()
    specs = {n: net_spec(m) for n, m in deployed.items() if n != "normalizer"}
    plain = fold_gates(deployed, {k: t.detach() for k, t in theta.items()})
    assert {n: net_spec(m) for n, m in deployed.items() if n != "normalizer"} == specs  # inputs untouched
    assert plain["ofenet_state"].spec()["widths"] == [3, 5, 5]
    assert plain["actor"].spec()["hidden"] == [9, 10]
    assert plain["actor"].spec()["obs_dim"] == OBS + 3 + 5 + 5
    for name, net in plain.items():
        assert not any(m._forward_hooks for m in net.modules()), name
        if name != "normalizer":
            fresh = build_net(net_spec(net))
            assert [n for n, _ in net.named_parameters()] == [n for n, _ in fresh.named_parameters()]
    obs = torch.randn(64, OBS)
    with torch.no_grad():
        for t in theta.values():
            t.copy_((t > REMOVE_AT).float())  # the gated policy with those units closed
        expected = agent.actor.deterministic(agent.features(agent.normalizer(obs)))
        got = plain["actor"].deterministic(plain["ofenet_state"](plain["normalizer"](obs)))
    assert torch.allclose(got, expected, atol=1e-5)


def test_gate_state_round_trips_through_weights_only_checkpoint():
    agent = _agent(ofenet=True)
    hook = _hook(agent)
    batch = {"obs": torch.randn(32, OBS), "next_obs": torch.randn(32, OBS), "actions": torch.rand(32, ACT),
             "rewards": torch.randn(32), "terminated": torch.zeros(32)}
    agent.update(batch)
    with torch.no_grad():
        hook.pruner.gates.theta["ofenet.state_block.layers.1.fc"][2] = 0.0
    hook.after_update(agent, 1)
    assert hook.widths()["ofenet.state_block.layers.1.fc"] == 4
    buf = io.BytesIO()
    torch.save({"agent": agent.state(), "hook": hook.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    again = SACAgent(agent.cfg, OBS, ACT)
    again.load_state(saved["agent"])
    hook2 = _hook(again)
    hook2.load_state_dict(saved["hook"])
    assert hook2.widths() == hook.widths()
    assert hook2.history == hook.history and hook2.history[-1][0] == 1
    # prune_every=1: the expected widths (sum of theta, after the removal) were recorded at step 1
    step, soft = hook.expected[-1]
    assert step == 1 and soft["ofenet.state_block.layers.1.fc"] == pytest.approx(
        float(hook.pruner.gates.theta["ofenet.state_block.layers.1.fc"].detach().sum()), abs=1e-3)
    assert hook2.expected == hook.expected
    for k, t in hook.pruner.gates.theta.items():
        assert torch.equal(hook2.pruner.gates.theta[k], t.detach())
    assert hook2.pruner.opt.state_dict()["state"].keys() == hook.pruner.opt.state_dict()["state"].keys()
    again.update(batch)
    hook2.after_update(again, 2)


def test_window_end_rounds_every_gate_to_its_most_likely_value():
    agent = _agent(ofenet=False)
    hook = _hook(agent, start=0.0, end=0.1)
    theta = hook.pruner.gates.theta
    with torch.no_grad():
        theta["actor.trunk.0"][[0, 1, 2]] = torch.tensor([0.3, 0.5, 0.6])
    hook.after_update(agent, 10)
    assert hook.finished and hook.widths()["actor.trunk.0"] == 10  # 0.3 and 0.5 go, 0.6 stays
    assert float(theta["actor.trunk.0"].detach().min()) > 0.5
    # Once the window is over prune_ratio is the real share of the dense cost: every unit passes.
    dense, now = hook.pruner.dense_cost, hook.pruner.cost.expected(hook.widths())
    assert now < dense and hook.last["prune_ratio"] == pytest.approx(1 - now / dense)


def _grads(theta: dict[str, torch.Tensor], value: float) -> None:
    for t in theta.values():
        t.grad = torch.full_like(t, value)


def test_target_caps_the_removed_share_at_the_goal_and_steers_lambda():
    agent = _agent(ofenet=False)
    prune = PruneConfig(prune="gates", gate_cost="train", gate_lambda=1e-3, prune_every=1000)
    pruner = GateHook(agent, prune, total_steps=100, target=0.5).pruner
    theta = pruner.gates.theta
    lam = pruner.lam
    _grads(theta, 1.0)  # every gate pushed down, behind the goal: gates fall and lambda rises
    pruner.step(goal=0.3)
    assert all(float(t.detach().max()) < 1.0 for t in theta.values()) and pruner.lam > lam
    with torch.no_grad():  # a rounded network far ahead of the goal
        for t in theta.values():
            t[: t.numel() // 2] = 0.2
    assert 1 - pruner.rounded_cost() / pruner.dense_cost > 0.3
    before = {k: t.detach().clone() for k, t in theta.items()}
    lam = pruner.lam
    _grads(theta, 1.0)
    pruner.step(goal=0.3)
    assert all(torch.equal(t.detach(), before[k]) for k, t in theta.items()) and pruner.lam < lam
    for _ in range(10):  # ahead of the goal, gates may still rise (once Adam's momentum turns)
        _grads(theta, -1.0)
        pruner.step(goal=0.3)
    assert all(bool((t.detach() >= before[k]).all()) and bool((t.detach() > before[k]).any())
               for k, t in theta.items())

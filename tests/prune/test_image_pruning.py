"""Group pruning of the real image agents (Impala-CNN ``ActorCriticCNN`` / ``QNetworkCNN``) at
width tau in {1, 2, 3}: exactness against the dense net with the removed channels zeroed, heads,
Adam moments, DQN target twins, the PPO shared encoder, and the spec round trip."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from edgerl.config import PruneConfig, RunConfig
from edgerl.nets import build_net, net_spec
from edgerl.nets.impala import ActorCriticCNN, QNetworkCNN, image_encoder_spec, impala_channels
from edgerl.prune import layer_widths
from edgerl.prune.gradual import GradualPruner, PruneTarget, target_width
from edgerl.prune.graph import PruneGraph
from edgerl.prune.schedule import OneShotSchedule

SHAPE = (3, 24, 24)
"""Small RGB frames (24 -> 12 -> 6 -> 3 through the three stages), so tau = 3 stays fast."""
HIDDEN = [32]
N_ACTIONS = 5
RATIOS = {1: 0.5, 2: 0.6, 3: 0.8}
"""Channel ratio pruned at each width (0.8 at tau = 3, as in the paper)."""


def _obs(n: int, seed: int = 0, shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)


def _encoder(tau: float, shape: tuple[int, ...] = SHAPE) -> dict[str, Any]:
    return image_encoder_spec("impala", shape, tau, HIDDEN)


def _outputs(net: nn.Module, obs: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        out = net(obs)
    return list(out) if isinstance(out, tuple) else [out]


def coupled_layers(stages: int = 3, blocks: int = 2) -> dict[str, set[str]]:
    """Group key -> the layers whose output channels it removes, written by hand: a stage's
    stream is its conv plus every residual block's second conv (they are summed)."""
    e = "encoder"
    groups: dict[str, set[str]] = {}
    for i in range(stages):
        groups[f"{e}.stages.{i}.conv"] = {f"{e}.stages.{i}.conv"} | {
            f"{e}.stages.{i}.blocks.{j}.conv1" for j in range(blocks)}
        for j in range(blocks):
            groups[f"{e}.stages.{i}.blocks.{j}.conv0"] = {f"{e}.stages.{i}.blocks.{j}.conv0"}
    groups[f"{e}.fc.0"] = {f"{e}.fc.0"}
    return groups


def zeroed(net: nn.Module, removed: dict[str, list[int]]) -> nn.Module:
    """Dense copy in which the removed channels of each group output exactly 0 (rows and biases
    of every coupled producer zeroed; ReLU, max-pooling and residual sums keep them at 0)."""
    ref = copy.deepcopy(net)
    layers = dict(ref.named_modules())
    coupled = coupled_layers()
    with torch.no_grad():
        for key, idxs in removed.items():
            for name in coupled[key]:
                layers[name].weight[idxs] = 0
                layers[name].bias[idxs] = 0
    return ref


@dataclass
class Pruned:
    """One width's pruned network and what it is checked against."""

    tau: int
    ratio: float
    net: ActorCriticCNN
    dense: ActorCriticCNN
    """The network just before pruning (after two Adam steps)."""
    removed: dict[str, list[int]]
    """Group key -> channels removed (the L1-lowest ones of the dense network)."""
    opt: torch.optim.Adam
    graph_groups: dict[str, set[str]]


def _train_steps(net: nn.Module, opt: torch.optim.Optimizer, n: int, seed: int) -> None:
    for k in range(n):
        logits, value = net(_obs(8, seed + k))
        loss = logits.logsumexp(-1).mean() + value.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.fixture(scope="module", params=[1, 2, 3], ids=lambda t: f"tau{t}")
def pruned(request: pytest.FixtureRequest) -> Iterator[Pruned]:
    threads = torch.get_num_threads()  # module fixtures run before conftest's one-thread fixture
    torch.set_num_threads(1)
    try:
        yield _prune(request.param, RATIOS[request.param])
    finally:
        torch.set_num_threads(threads)


def _prune(tau: int, ratio: float) -> Pruned:
    torch.manual_seed(tau)
    net = ActorCriticCNN(_encoder(tau), N_ACTIONS)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    _train_steps(net, opt, 2, seed=10)  # Adam moments and non-initial weights
    dense = copy.deepcopy(net)
    # What L1 group importance removes, computed independently on the dense copy.
    graph = PruneGraph(copy.deepcopy(net), (_obs(2),), keep=["actor", "critic"])
    groups = {g.key: set(g.out_layers) for g in graph.groups()}
    removed = {g.key: graph.lowest(g.key, g.width - target_width(g.width, ratio), "l1") for g in graph.groups()}
    # Tie Adam's moments to the weights, so slicing them with other indices would show.
    with torch.no_grad():
        for p in net.parameters():
            opt.state[p]["exp_avg"].copy_(p)
            opt.state[p]["exp_avg_sq"].copy_(p * p)
    pruner = GradualPruner({"net": PruneTarget(net, (_obs(2),), keep=net.heads())}, optimizers=[opt],
                           schedule=OneShotSchedule(ratio, 10))
    report = pruner.step(0)
    assert report is not None and report.ratio == ratio
    return Pruned(tau, ratio, net, dense, removed, opt, groups)


def test_groups_are_the_residual_streams(pruned: Pruned) -> None:
    assert pruned.graph_groups == coupled_layers()


def test_pruned_equals_dense_with_removed_channels_zeroed(pruned: Pruned) -> None:
    obs = _obs(8, seed=99)
    ref = zeroed(pruned.dense, pruned.removed)
    for got, want in zip(_outputs(pruned.net, obs), _outputs(ref, obs), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # The check has teeth: the dense network itself computes something else.
    assert not torch.allclose(_outputs(pruned.dense, obs)[0], _outputs(ref, obs)[0], atol=1e-4)


def test_widths_shrink_and_heads_keep_their_shape(pruned: Pruned) -> None:
    stream = [max(1, round(c * pruned.tau)) for c in (16, 32, 32)]
    want = [[target_width(c, pruned.ratio)] * 3 for c in stream]
    spec = pruned.net.spec()["encoder"]["kwargs"]
    assert spec["channels"] == want and spec["hidden"] == [target_width(HIDDEN[0], pruned.ratio)]
    net = pruned.net
    assert (net.actor.out_features, net.critic.out_features) == (N_ACTIONS, 1)
    assert net.actor.in_features == net.critic.in_features == spec["hidden"][0] == net.encoder.out_dim
    logits, value = net(_obs(4))
    assert logits.shape == (4, N_ACTIONS) and value.shape == (4,)
    assert net.deterministic(_obs(4)).dtype == torch.int64


def test_adam_moments_are_sliced_like_the_weights(pruned: Pruned) -> None:
    live = list(pruned.net.parameters())
    assert [p for g in pruned.opt.param_groups for p in g["params"]] == live
    for name, p in pruned.net.named_parameters():
        state = pruned.opt.state[p]
        assert state["exp_avg"].shape == p.shape, name
        torch.testing.assert_close(state["exp_avg"], p.detach(), atol=0, rtol=0, msg=name)
        torch.testing.assert_close(state["exp_avg_sq"], p.detach() ** 2, atol=0, rtol=0, msg=name)
        assert float(state["step"]) == 2.0
    net, opt = copy.deepcopy((pruned.net, pruned.opt))  # the copy keeps optimizer -> parameter links
    _train_steps(net, opt, 1, seed=50)  # training continues on the live parameters
    assert all(not torch.equal(p, q) for p, q in zip(pruned.net.parameters(), net.parameters(), strict=True))


def test_spec_round_trip(pruned: Pruned) -> None:
    rebuilt = build_net(net_spec(pruned.net))
    rebuilt.load_state_dict(pruned.net.state_dict())
    obs = _obs(6, seed=5)
    for got, want in zip(_outputs(rebuilt, obs), _outputs(pruned.net, obs), strict=True):
        assert torch.equal(got, want)
    assert layer_widths(rebuilt) == layer_widths(pruned.net)


def test_round_to_8_gives_the_hardware_friendly_widths() -> None:
    """REFERENCE.md section 4: tau = 3 at 0.8 is 10/19/19 wide, 8/16/16 with round_to=8."""
    net = ActorCriticCNN(_encoder(3), N_ACTIONS)
    GradualPruner({"net": (net, (_obs(2),), net.heads())}, optimizers=[], schedule=OneShotSchedule(0.8, 1),
                  round_to=8).step(0)
    assert net.spec()["encoder"]["kwargs"]["channels"] == [[8] * 3, [16] * 3, [16] * 3]
    assert impala_channels(3)[0][0] == 48 and target_width(48, 0.8) == 10 and target_width(96, 0.8) == 19


# ------------------------------------------------------------------ the agents' own wiring
def _hook(agent: Any, ratio: float) -> Any:
    from edgerl.prune.hooks import make_hooks

    prune = PruneConfig(prune="gradual", final_ratio=ratio, schedule="oneshot", prune_start=0.0)
    (hook,) = make_hooks(agent, RunConfig(total_steps=10), agent.cfg, prune)
    return hook


def test_dqn_target_is_pruned_with_the_online_indices() -> None:
    from edgerl.algos.dqn import DQNAgent, DQNConfig

    shape = (4, 24, 24)
    torch.manual_seed(0)
    agent = DQNAgent(DQNConfig(net="impala", width=2.0, hidden=HIDDEN), shape, N_ACTIONS)
    assert isinstance(agent.q_network, QNetworkCNN)
    with torch.no_grad():  # the target lags behind the online net: other values, same shapes
        for p in agent.target_network.parameters():
            p.add_(0.05 * torch.randn_like(p))
    graph = PruneGraph(copy.deepcopy(agent.q_network), (_obs(2, shape=shape),), keep=["q"])
    removed = {g.key: graph.lowest(g.key, g.width - target_width(g.width, 0.6)) for g in graph.groups()}
    target_ref = zeroed(agent.target_network, removed)

    _hook(agent, 0.6).after_update(agent, 0)
    assert net_spec(agent.target_network) == net_spec(agent.q_network)
    assert layer_widths(agent.target_network) == layer_widths(agent.q_network)
    assert agent.q_network.spec()["encoder"]["kwargs"]["channels"] == [[13] * 3, [26] * 3, [26] * 3]
    obs = _obs(8, seed=3, shape=shape)
    torch.testing.assert_close(agent.target_network(obs), target_ref(obs), atol=1e-5, rtol=1e-5)
    agent.sync_target()  # hard updates keep working at the pruned widths
    assert torch.equal(agent.target_network(obs), agent.q_network(obs))


def test_ppo_shared_encoder_is_pruned_once_for_both_heads() -> None:
    from edgerl.algos.ppo import PPOAgent, PPOConfig

    shape = (4, 24, 24)
    torch.manual_seed(0)
    agent = PPOAgent(PPOConfig(net="impala", width=1.0, hidden=HIDDEN), shape, N_ACTIONS)
    assert list(agent.prunable()) == ["net"]  # one network: encoder, actor and critic together
    hook = _hook(agent, 0.5)
    graph = hook.pruner.graphs["net"]
    fc = graph.group("encoder.fc.0")
    assert set(fc.in_layers) == {"actor", "critic"}  # both heads read the one pruned encoder
    assert {"actor", "critic"}.isdisjoint(g.key for g in graph.groups())
    hook.after_update(agent, 0)
    net = agent.net
    assert net.actor.in_features == net.critic.in_features == target_width(HIDDEN[0], 0.5)
    assert net.spec()["encoder"]["kwargs"]["channels"] == [[8] * 3, [16] * 3, [16] * 3]
    assert set(agent.optimizer.param_groups[0]["params"]) == set(net.parameters())


@pytest.mark.parametrize("kind", ["impala", "nature"])
def test_encoder_out_dim_follows_pruning_without_hidden_layers(kind: str) -> None:
    """With no Linear after the convs the features are the flattened last stage: out_dim must
    follow the pruned stream, as the heads do."""
    shape = (4, 36, 36)
    net = ActorCriticCNN(image_encoder_spec(kind, shape, 1, []), N_ACTIONS)
    graph = PruneGraph(net, _obs(2, shape=shape), keep=[net.actor, net.critic])
    last = next(g for g in graph.groups() if "actor" in g.in_layers)  # the stream the heads read
    before = net.encoder.out_dim
    graph.prune(last.key, range(last.width // 2))
    features = net.encoder(_obs(2, shape=shape))
    assert net.encoder.out_dim == features.shape[1] == net.actor.in_features < before

"""Naive per-layer structured pruning (``--prune naive``), the baseline that ignores coupling:
what it masks, that masks hold through training and resume, and what ignoring the residual
coupling costs (nothing can be removed physically but channels every coupled conv dropped)."""

from __future__ import annotations

import copy
import io

import pytest
import torch

from edgerl.bench.macs import count_params
from edgerl.compact.units import remove_dead_units
from edgerl.config import PruneConfig, RunConfig
from edgerl.nets.impala import ActorCriticCNN, image_encoder_spec, scale_uint8
from edgerl.prune.gradual import GradualPruner, target_width
from edgerl.prune.graph import PruneGraph
from edgerl.prune.hooks import NaivePruneHook, make_hooks
from edgerl.prune.naive import NaiveFilterMasker, filter_norms
from edgerl.prune.schedule import OneShotSchedule

SHAPE = (4, 24, 24)
RATIO = 0.5


def _obs(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *SHAPE), dtype=torch.uint8, generator=g)


def _net(seed: int = 0) -> ActorCriticCNN:
    torch.manual_seed(seed)
    return ActorCriticCNN(image_encoder_spec("impala", SHAPE, 1.0, [32]), 4)


def _stream(i: int) -> list[str]:
    """The convs whose outputs are summed into stage i's residual stream."""
    s = f"encoder.stages.{i}"
    return [f"{s}.conv", f"{s}.blocks.0.conv1", f"{s}.blocks.1.conv1"]


def _masked(ratio: float = RATIO) -> tuple[ActorCriticCNN, ActorCriticCNN, NaiveFilterMasker]:
    net = _net()
    dense = copy.deepcopy(net)
    masker = NaiveFilterMasker(net, OneShotSchedule(ratio, 10), keep=net.heads())
    assert masker.step(0) == ratio
    return net, dense, masker


def test_each_layer_masks_its_own_weakest_filters() -> None:
    net, dense, masker = _masked()
    layers, dense_layers = dict(net.named_modules()), dict(dense.named_modules())
    assert "actor" not in masker.masks and "critic" not in masker.masks
    assert len(masker.masks) == 3 * 3 + 3 * 2 + 1  # 15 convs and the hidden Linear
    for name, idxs in masker.masked().items():
        width = layers[name].weight.shape[0]
        assert len(idxs) == width - target_width(width, RATIO), name
        norms = filter_norms(dense_layers[name])
        assert set(idxs) == set(torch.argsort(norms)[: len(idxs)].tolist()), name  # its own L1 ranking
        assert (layers[name].weight[idxs] == 0).all() and (layers[name].bias[idxs] == 0).all()
    assert torch.equal(net.actor.weight, dense.actor.weight) and torch.equal(net.critic.weight, dense.critic.weight)
    assert count_params(net) == count_params(dense)  # nothing physically removed


def test_coupled_convs_choose_differently_so_the_choice_cannot_be_removed() -> None:
    net, _, masker = _masked()
    graph = PruneGraph(copy.deepcopy(net), (_obs(2),), keep=["actor", "critic"])
    masked = masker.masked()
    for i in range(3):
        # The dependency graph couples the stream's convs into one group ...
        assert set(_stream(i)) <= set(graph.group(f"encoder.stages.{i}.conv").out_layers)
        # ... but each of them chose its channels alone, and the choices disagree.
        picks = [set(masked[n]) for n in _stream(i)]
        assert len({frozenset(p) for p in picks}) > 1, f"stage {i}: all convs picked {picks[0]}"
        assert len(set.intersection(*picks)) < len(picks[0])

    # Removing the stage conv's choice by itself (and its reader's input columns) breaks the sum.
    broken = copy.deepcopy(net)
    stage, keep = broken.encoder.stages[0], sorted(set(range(16)) - set(masked["encoder.stages.0.conv"]))
    with torch.no_grad():
        conv = torch.nn.Conv2d(SHAPE[0], len(keep), 3, padding=1)
        conv.weight.copy_(stage.conv.weight[keep])
        conv.bias.copy_(stage.conv.bias[keep])
        conv0 = torch.nn.Conv2d(len(keep), stage.blocks[0].conv0.out_channels, 3, padding=1)
        conv0.weight.copy_(stage.blocks[0].conv0.weight[:, keep])
        conv0.bias.copy_(stage.blocks[0].conv0.bias)
    stage.conv, stage.blocks[0].conv0 = conv, conv0
    with pytest.raises(RuntimeError, match="must match the size"):
        broken(_obs(2))

    # The naive net's stream still carries the channels its stage conv masked (the residual
    # blocks write into them); removing them through the graph takes the coupled convs'
    # channels too and computes another function.
    x = scale_uint8(_obs(8, seed=1))
    gone = masked["encoder.stages.0.conv"]
    with torch.no_grad():
        stream = net.encoder.stages[0](x)
    alive = sorted(set(gone) - set.intersection(*(set(masked[n]) for n in _stream(0))))
    assert alive and (stream[:, alive].abs().amax(dim=(0, 2, 3)) > 0).all()
    coupled = copy.deepcopy(net)
    PruneGraph(coupled, (_obs(2),), keep=["actor", "critic"]).prune("encoder.stages.0.conv", gone)
    with torch.no_grad():
        got = torch.zeros_like(stream)
        got[:, keep] = coupled.encoder.stages[0](x)
        diff = float((got - stream).abs().max())
        value_diff = float((coupled.value(_obs(8, seed=1)) - net.value(_obs(8, seed=1))).abs().max())
    assert diff > 1e-2 and value_diff > 1e-4, (diff, value_diff)  # exact removal holds to 1e-5


def test_compaction_removes_only_channels_every_coupled_conv_masked() -> None:
    net, _, masker = _masked()
    masked = masker.masked()
    compact = copy.deepcopy(net)
    removed = remove_dead_units(compact, (_obs(2),), compact.heads())
    obs = _obs(16, seed=2)
    with torch.no_grad():
        for got, want in zip(compact(obs), net(obs), strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for i in range(2):  # (stage 2's stream reaches the Linear through flatten: compaction skips it)
        both = set.intersection(*(set(masked[n]) for n in _stream(i)))
        assert removed.get(f"encoder.stages.{i}.conv", 0) == len(both) < len(masked[f"encoder.stages.{i}.conv"])
    for i in range(3):  # uncoupled layers: the naive choice is removable as is
        for j in range(2):
            key = f"encoder.stages.{i}.blocks.{j}.conv0"
            assert removed[key] == len(masked[key])
    assert removed["encoder.fc.0"] == len(masked["encoder.fc.0"])

    grouped = _net()  # the same widths reached through the groups: every stream channel goes
    GradualPruner({"net": (grouped, (_obs(2),), grouped.heads())}, optimizers=[],
                  schedule=OneShotSchedule(RATIO, 10)).step(0)
    stream = [c[0] for c in compact.spec()["encoder"]["kwargs"]["channels"]]
    assert stream[2] == 32 and stream[0] > 8 and stream[1] > 16  # wider than the grouped 8/16/16
    assert count_params(compact) > 1.5 * count_params(grouped), (count_params(compact), count_params(grouped))


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_hook_keeps_masks_through_updates_and_resume(algo: str) -> None:
    from edgerl.algos.dqn import DQNAgent, DQNConfig
    from edgerl.algos.ppo import PPOAgent, PPOConfig

    agent_cls, cfg = (PPOAgent, PPOConfig(num_envs=2, num_minibatches=2, update_epochs=2, hidden=[32])) \
        if algo == "ppo" else (DQNAgent, DQNConfig(net="impala", batch_size=8, hidden=[32]))
    run = RunConfig(total_steps=100)
    prune = PruneConfig(prune="naive", final_ratio=RATIO, schedule="linear", prune_start=0.0, prune_end=0.5,
                        prune_every=10)

    def make(seed: int, state: dict | None = None):
        torch.manual_seed(seed)
        agent = agent_cls(cfg, SHAPE, 4)
        if state is not None:  # as a resumed training loop does: restore, then attach the hooks
            agent.load_state(state["agent"])
        (hook,) = make_hooks(agent, run, cfg, prune)
        assert isinstance(hook, NaivePruneHook)
        if state is not None:
            hook.load_state_dict(state["hook"])
        return agent, hook

    def update(agent, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        n = 8
        batch = {"obs": _obs(n, seed), "actions": torch.randint(0, 4, (n,), generator=g)}
        if algo == "ppo":
            batch.update(logprobs=torch.full((n,), -1.4), values=torch.zeros(n), advantages=torch.randn(n, generator=g),
                         returns=torch.randn(n, generator=g))
        else:
            batch.update(returns=torch.randn(n, generator=g), discount=torch.full((n,), 0.97),
                         next_obs=_obs(n, seed + 1), weights=torch.ones(n))
        agent.update(batch)

    def nets(agent) -> list[torch.nn.Module]:
        return [agent.net] if algo == "ppo" else [agent.q_network, agent.target_network]

    def assert_masked(agent, hook) -> None:
        masks = hook.maskers[next(iter(hook.maskers))].masks
        for net in nets(agent):
            layers = dict(net.named_modules())
            for name, keep in masks.items():
                assert (layers[name].weight[~keep] == 0).all() and (layers[name].bias[~keep] == 0).all(), name

    agent, hook = make(0)
    before: dict[str, set[int]] = {}
    for step in range(0, 60, 10):
        update(agent, step)
        assert_masked(agent, hook)  # re-zeroed after every optimizer step, mid-update too
        hook.after_update(agent, step)
        now = {k: set(v) for k, v in next(iter(hook.maskers.values())).masked().items()}
        assert all(before.get(k, set()) <= v for k, v in now.items()), "masks only grow"
        before = now
    final = hook.widths()
    layers = dict(nets(agent)[0].named_modules())
    assert all(w == target_width(layers[k].weight.shape[0], RATIO) for k, w in next(iter(final.values())).items())

    # Checkpoint: plain tensors and types only (loads with weights_only=True).
    buf = io.BytesIO()
    torch.save({"agent": agent.state(), "hook": hook.state_dict()}, buf)
    buf.seek(0)
    agent2, hook2 = make(1, torch.load(buf, weights_only=True))
    assert hook2.widths() == final
    update(agent2, 99)
    assert_masked(agent2, hook2)  # the resumed hook guards the rebuilt networks and optimizer

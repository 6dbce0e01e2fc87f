"""Impala-CNN and Nature CNN: parameter counts, forward shapes, spec round trips (also after
group pruning), and the Impoola variant."""

from __future__ import annotations

import pytest
import torch

from edgerl.errors import ConfigError
from edgerl.nets import build_net, net_spec
from edgerl.nets.impala import (
    ActorCriticCNN,
    ImpalaEncoder,
    QNetworkCNN,
    image_encoder_spec,
    impala_channels,
)


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _obs(shape, n=2, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("tau", "millions"), [(1, 0.63), (3, 2.45)])
def test_impala_param_count_matches_the_paper(tau, millions):
    # Procgen: 64x64 RGB, 15 actions, Linear(256) after the flattened 8x8 map.
    net = ActorCriticCNN(image_encoder_spec("impala", [3, 64, 64], tau, [256]), 15)
    assert round(_params(net) / 1e6, 2) == millions


def test_impoola_pools_before_the_linear():
    dense = ImpalaEncoder([3, 64, 64], impala_channels(1), [256])
    pooled = ImpalaEncoder([3, 64, 64], impala_channels(1), [256], impoola=True)
    # Only the Linear's input shrinks: 32 x 8 x 8 -> 32 features.
    assert _params(dense) - _params(pooled) == 32 * 63 * 256
    assert pooled(_obs([3, 64, 64])).shape == (2, 256)


@pytest.mark.parametrize("tau", [1, 2, 3])
def test_impala_spec_round_trip_with_modified_widths(tau):
    net = ActorCriticCNN(image_encoder_spec("impala", [4, 40, 36], tau, [64]), 6)
    spec = net_spec(net)
    assert spec["kwargs"]["encoder"]["kwargs"]["channels"] == [[16 * tau] * 3, [32 * tau] * 3, [32 * tau] * 3]
    # Every stream width and every residual block's inner width is its own number.
    enc = spec["kwargs"]["encoder"]["kwargs"]
    enc["channels"] = [[5, 3, 4], [7, 2, 6], [9, 8, 1]]
    enc["hidden"] = [11]
    small = build_net(spec)
    assert net_spec(small) == spec
    shapes = {n: tuple(p.shape) for n, p in small.named_parameters()}
    assert shapes["encoder.stages.0.conv.weight"] == (5, 4, 3, 3)
    assert shapes["encoder.stages.0.blocks.1.conv0.weight"] == (4, 5, 3, 3)
    assert shapes["encoder.stages.1.conv.weight"] == (7, 5, 3, 3)
    assert shapes["encoder.stages.1.blocks.0.conv1.weight"] == (7, 2, 3, 3)
    assert shapes["encoder.fc.0.weight"] == (11, 9 * 5 * 5)  # 40x36 -> 20x18 -> 10x9 -> 5x5
    assert shapes["actor.weight"] == (6, 11) and shapes["critic.weight"] == (1, 11)
    logits, value = small(_obs([4, 40, 36], n=3))
    assert logits.shape == (3, 6) and value.shape == (3,)


def test_forward_shapes_and_greedy_actions():
    obs = _obs([4, 84, 84], n=5)
    ac = ActorCriticCNN(image_encoder_spec("impala", [4, 84, 84], 0.5, [32]), 4)
    logits, value = ac(obs)
    assert logits.shape == (5, 4) and value.shape == (5,)
    torch.testing.assert_close(ac.value(obs), value)
    assert torch.equal(ac.deterministic(obs), logits.argmax(-1))
    q = QNetworkCNN(image_encoder_spec("nature", [4, 84, 84], 0.5, [32]), 6)
    assert q(obs).shape == (5, 6) and q.deterministic(obs).dtype == torch.int64
    assert [h.out_features for h in q.heads()] == [6]
    assert [h.out_features for h in ac.heads()] == [4, 1]


def test_input_is_scaled_inside_the_net():
    net = QNetworkCNN(image_encoder_spec("nature", [1, 36, 36], 0.25, [8]), 2)
    frames = _obs([1, 36, 36])
    # Same as feeding floats in [0, 1] to the layers: the /255 lives in the network.
    ref = net.q(net.encoder.fc(net.encoder.convs(frames.float() / 255)))
    torch.testing.assert_close(net(frames), ref)


def test_nature_cnn_matches_mnih_et_al():
    net = QNetworkCNN(image_encoder_spec("nature", [4, 84, 84], 1, [512]), 6)
    assert _params(net) == 1_687_206
    spec = net_spec(net)
    spec["kwargs"]["encoder"]["kwargs"].update(channels=[3, 5, 7], hidden=[9])
    small = build_net(spec)
    assert net_spec(small) == spec and small(_obs([4, 84, 84])).shape == (2, 6)


def test_bad_requests_are_config_errors():
    with pytest.raises(ConfigError, match="36x36"):
        build_net(image_encoder_spec("nature", [4, 32, 32], 1, [64]))
    with pytest.raises(ConfigError, match="impala or nature"):
        image_encoder_spec("resnet", [4, 84, 84], 1, [64])
    with pytest.raises(ConfigError, match="impoola"):
        image_encoder_spec("nature", [4, 84, 84], 1, [64], impoola=True)
    with pytest.raises(ConfigError, match="width"):
        impala_channels(0)


@pytest.mark.parametrize("impoola", [False, True])
def test_group_pruned_impala_rebuilds_from_its_spec(impoola):
    from edgerl.prune.graph import PruneGraph

    net = ActorCriticCNN(image_encoder_spec("impala", [3, 32, 32], 1, [24], impoola=impoola), 5)
    obs = _obs([3, 32, 32], n=4)
    graph = PruneGraph(net, (obs[:2],), keep=net.heads())
    # One group per stage stream, per residual inner conv, and the hidden Linear; heads stay.
    assert len(graph.groups()) == 3 + 6 + 1
    for i, g in enumerate(graph.groups()):
        graph.shrink_to(g.key, g.width - 1 - i % 3)
    enc = net_spec(net)["kwargs"]["encoder"]["kwargs"]
    assert enc["channels"] == [[15, 14, 13], [31, 30, 29], [31, 30, 29]] and enc["hidden"] == [23]
    rebuilt = build_net(net_spec(net))
    rebuilt.load_state_dict(net.state_dict())
    for a, b in zip(net(obs), rebuilt(obs), strict=True):
        torch.testing.assert_close(a, b)
    assert net.actor.out_features == 5 and net.critic.out_features == 1

"""GradualPruner: widths follow the schedule, parameters follow the widths, state round-trips."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from prune_toys import MLP, Impala, TwinQ
from torch import nn

from edgerl.errors import ConfigError
from edgerl.prune import CubicSchedule, OneShotSchedule, layer_widths
from edgerl.prune.gradual import GradualPruner, PruneTarget, target_width


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_target_width_rounding() -> None:
    assert target_width(64, 0.0) == 64
    assert target_width(64, 0.5) == 32
    assert target_width(10, 0.8) == 2
    assert target_width(3, 0.99) == 1  # never below one channel
    assert target_width(64, 0.8, round_to=8) == 16  # 12.8 -> 13 -> nearest multiple of 8
    assert target_width(64, 0.99, round_to=8) == 8
    assert target_width(6, 0.5, round_to=8) == 3  # narrower than round_to: plain rounding


def test_sac_like_pruning_follows_the_schedule() -> None:
    torch.manual_seed(0)
    actor = MLP(hidden=(40, 40))
    critic = TwinQ(hidden=(40, 40))
    critic_target = copy.deepcopy(critic).requires_grad_(False)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=1e-3)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=1e-3)
    obs, act = torch.randn(4, 7), torch.randn(4, 3)
    schedule = CubicSchedule(final_ratio=0.5, total_steps=60, every=6)
    pruner = GradualPruner(
        {
            "actor": (actor, obs, ["out"]),
            "critic": PruneTarget(critic, (obs, act), ["q1.out", "q2.out"], [critic_target]),
        },
        optimizers=[actor_opt, critic_opt],
        schedule=schedule,
    )
    dense_params = {"actor": _n_params(actor), "critic": _n_params(critic)}
    reports = []
    for step in range(61):
        o, a = torch.randn(16, 7), torch.randn(16, 3)
        q1, q2 = critic(o, a)
        critic_opt.zero_grad()
        (q1.pow(2).mean() + q2.pow(2).mean()).backward()
        critic_opt.step()
        actor_opt.zero_grad()
        actor(o).pow(2).mean().backward()
        actor_opt.step()
        with torch.no_grad():
            for p, tp_ in zip(critic.parameters(), critic_target.parameters(), strict=True):
                tp_.lerp_(p, 0.05)
        report = pruner.step(step)
        if report is not None:
            reports.append(report)
            goal = target_width(40, schedule.target_ratio(step))
            assert all(w == goal for net in report.widths.values() for w in net.values())
    assert reports[0].step == 18  # t0 = 12 has ratio 0; every 6 steps from t0
    final = reports[-1]
    assert final.ratio == pytest.approx(0.5)
    assert final.widths["actor"] == {"fc1": 20, "fc2": 20}
    assert layer_widths(critic_target) == layer_widths(critic)
    # Parameter counts equal dense networks built at the final widths.
    assert final.params["actor"] == _n_params(MLP(hidden=(20, 20)))
    assert final.params["critic"] == _n_params(TwinQ(hidden=(20, 20)))
    shrink = 1 - final.params["critic"] / dense_params["critic"]
    assert 0.6 < shrink < 0.75  # about 1 - (1 - 0.5)^2 for the hidden-hidden layers
    assert pruner.step(61) is None  # nothing left to do after t1
    q1, _ = critic(torch.randn(5, 7), torch.randn(5, 3))
    assert q1.shape == (5, 1) and actor(torch.randn(5, 7)).shape == (5, 3)


def test_round_to_and_impala() -> None:
    torch.manual_seed(0)
    model = Impala(c=16)
    opt = torch.optim.Adam(model.parameters())
    pruner = GradualPruner(
        {"net": (model, torch.randn(2, 3, 12, 12), ["pi", "v"])},
        [opt],
        OneShotSchedule(0.7, 10),
        round_to=4,
    )
    report = pruner.step(0)
    assert report.widths["net"] == {"conv": 4, "res0.conv1": 4, "res1.conv1": 4, "fc": 4}
    pi, v = model(torch.randn(3, 3, 12, 12))
    (pi.sum() + v.sum()).backward()
    opt.step()


def test_state_is_plain_and_restores_on_rebuilt_networks() -> None:
    torch.manual_seed(0)
    model = MLP(hidden=(32, 32))
    opt = torch.optim.Adam(model.parameters())
    schedule = CubicSchedule(0.75, total_steps=100, start=0.0, end=0.5, every=10)
    pruner = GradualPruner({"actor": (model, torch.randn(2, 7), ["out"])}, [opt], schedule)
    pruner.step(20)
    state = json.loads(json.dumps(pruner.state_dict()))  # plain types only
    assert state["original_widths"] == {"actor": {"fc1": 32, "fc2": 32}}

    widths = layer_widths(model)
    rebuilt = MLP(hidden=(widths["fc1"], widths["fc2"]))
    rebuilt.load_state_dict(model.state_dict())
    opt2 = torch.optim.Adam(rebuilt.parameters())
    resumed = GradualPruner(
        {"actor": (rebuilt, torch.randn(2, 7), ["out"])}, [opt2], CubicSchedule(0.1, total_steps=1)
    )
    resumed.load_state_dict(state)
    assert resumed.original_widths == pruner.original_widths
    assert resumed.schedule == schedule and resumed.applied_ratio == pruner.applied_ratio
    assert resumed.step(20) is None
    report = resumed.step(50)
    assert report.widths["actor"] == {"fc1": 8, "fc2": 8}

    with pytest.raises(ConfigError, match="rebuild the network"):
        GradualPruner(
            {"actor": (TwinQ(), (torch.randn(2, 7), torch.randn(2, 3)), ["q1.out", "q2.out"])},
            [],
            schedule,
        ).load_state_dict(state)


def test_taylor_importance_needs_gradients() -> None:
    model = MLP()
    pruner = GradualPruner(
        {"a": (model, torch.randn(2, 7), ["out"])},
        [],
        OneShotSchedule(0.5, 10),
        importance="taylor",
    )
    with pytest.raises(ValueError, match="gradients"):
        pruner.step(0)
    model(torch.randn(8, 7)).pow(2).mean().backward()
    assert pruner.step(0).widths["a"] == {"fc1": 12, "fc2": 10}


def test_prune_once_prunes_a_network_to_the_ratio_keeping_its_heads() -> None:
    from edgerl.nets.mlp import SquashedGaussianActor
    from edgerl.prune import prune_once

    torch.manual_seed(0)
    actor = SquashedGaussianActor(7, 3, [24, 20])
    report = prune_once(actor, actor.example_inputs(), 0.5, round_to=4)
    assert report is not None and report.ratio == 0.5
    assert actor.spec()["hidden"] == [target_width(24, 0.5, 4), target_width(20, 0.5, 4)] == [12, 12]
    assert actor(torch.zeros(2, 7))[0].shape == (2, 3)

"""Optimizer surgery: Adam keeps stepping the live parameters with correctly sliced state."""

from __future__ import annotations

import copy

import pytest
import torch
from prune_toys import MLP, TOYS, Toy, TwinQ, randomize
from torch import nn

from edgerl.prune import track_removal
from edgerl.prune.graph import PruneGraph


def _loss(model: nn.Module, inputs) -> torch.Tensor:
    out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    out = out if isinstance(out, tuple) else (out,)
    return sum(o.pow(2).mean() for o in out)


def _train(model: nn.Module, opt: torch.optim.Optimizer, inputs, steps: int = 3) -> None:
    for _ in range(steps):
        opt.zero_grad()
        _loss(model, inputs).backward()
        opt.step()


def test_adam_moments_are_sliced_like_the_weights_mlp() -> None:
    torch.manual_seed(0)
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    _train(model, opt, torch.randn(8, 7))
    old = {
        n: (p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()})
        for n, p in model.named_parameters()
    }
    graph = PruneGraph(model, torch.randn(2, 7), keep=["out"])
    graph.prune("fc1", [1, 4, 9], optimizers=[opt])
    keep = [i for i in range(24) if i not in (1, 4, 9)]
    expected = {
        "fc1.weight": lambda t: t[keep],
        "fc1.bias": lambda t: t[keep],
        "fc2.weight": lambda t: t[:, keep],
    }
    for name, p in model.named_parameters():
        w, state = old[name]
        cut = expected.get(name, lambda t: t)
        assert torch.equal(p.detach(), cut(w))
        new_state = opt.state[p]
        assert torch.equal(new_state["exp_avg"], cut(state["exp_avg"]))
        assert torch.equal(new_state["exp_avg_sq"], cut(state["exp_avg_sq"]))
        assert torch.equal(new_state["step"], state["step"])


@pytest.mark.parametrize(
    "toy", [t for t in TOYS if t.name in ("densenet", "impala", "twin_q")], ids=lambda t: t.name
)
def test_state_follows_any_handler(toy: Toy) -> None:
    """Concat offsets, residual streams, BN: with exp_avg := 2 * weight, it must stay so."""
    torch.manual_seed(0)
    model = randomize(toy.make())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    _train(model, opt, toy.inputs(8), steps=2)
    steps = {}
    for p in model.parameters():
        opt.state[p]["exp_avg"] = 2 * p.detach().clone()
        opt.state[p]["exp_avg_sq"] = p.detach().clone() ** 2
        steps[id(p)] = opt.state[p]["step"].clone()
    step_values = sorted(float(s) for s in steps.values())
    graph = PruneGraph(model, toy.inputs(4), keep=toy.keep)
    for info in graph.groups():
        graph.prune(info.key, list(range(0, info.width, 3)), optimizers=[opt])
    params = list(model.parameters())
    assert [p for g in opt.param_groups for p in g["params"]] == params
    for p in params:
        torch.testing.assert_close(opt.state[p]["exp_avg"], 2 * p.detach(), atol=0, rtol=0)
        torch.testing.assert_close(opt.state[p]["exp_avg_sq"], p.detach() ** 2, atol=0, rtol=0)
    assert sorted(float(opt.state[p]["step"]) for p in params) == step_values


def test_update_after_pruning_moves_new_parameters() -> None:
    torch.manual_seed(0)
    model = MLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    _train(model, opt, torch.randn(8, 7))
    PruneGraph(model, torch.randn(2, 7), keep=["out"]).prune("fc2", [0, 2], optimizers=[opt])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    _train(model, opt, torch.randn(8, 7), steps=1)
    for n, p in model.named_parameters():
        assert not torch.equal(p.detach(), before[n]), f"{n} was not updated after pruning"
        assert float(opt.state[p]["step"]) == 4.0


def test_several_param_groups_two_critics_in_one_adam() -> None:
    torch.manual_seed(0)
    critic = TwinQ()
    target = copy.deepcopy(critic).requires_grad_(False)
    opt = torch.optim.Adam(
        [
            {"params": list(critic.q1.parameters()) + list(critic.obs_scale.parameters())},
            {
                "params": list(critic.q2.parameters()) + list(critic.act_scale.parameters()),
                "lr": 1e-4,
            },
        ],
        lr=3e-4,
    )
    inputs = (torch.randn(8, 7), torch.randn(8, 3))
    _train(critic, opt, inputs)
    graph = PruneGraph(critic, inputs, keep=["q1.out", "q2.out"], twins=[target])
    for key in ("q1.fc1", "q2.fc1", "q2.fc2"):
        graph.prune(key, [0, 5], optimizers=[opt])
    assert [g["lr"] for g in opt.param_groups] == [3e-4, 1e-4]
    group_ids = [{id(p) for p in g["params"]} for g in opt.param_groups]
    assert group_ids[0] == {
        id(p) for p in [*critic.q1.parameters(), *critic.obs_scale.parameters()]
    }
    assert group_ids[1] == {
        id(p) for p in [*critic.q2.parameters(), *critic.act_scale.parameters()]
    }
    assert all(opt.state[p]["exp_avg"].shape == p.shape for p in critic.parameters())
    _train(critic, opt, inputs, steps=1)
    assert target.q2.fc1.out_features == critic.q2.fc1.out_features == 14


def test_no_removal_leaves_everything_untouched() -> None:
    torch.manual_seed(0)
    model = MLP()
    opt = torch.optim.Adam(model.parameters())
    _train(model, opt, torch.randn(8, 7))
    before = {n: (p, p.detach().clone(), p.grad.clone()) for n, p in model.named_parameters()}
    with track_removal(model, [opt]):
        pass
    for n, p in model.named_parameters():
        obj, value, grad = before[n]
        assert p is obj and p.dtype == torch.float32
        assert torch.equal(p.detach(), value) and torch.equal(p.grad, grad)


def test_gradients_are_sliced_too() -> None:
    torch.manual_seed(0)
    model = MLP()
    opt = torch.optim.Adam(model.parameters())
    _loss(model, torch.randn(8, 7)).backward()
    g2 = model.fc2.weight.grad.clone()
    PruneGraph(model, torch.randn(2, 7), keep=["out"]).prune("fc1", [3], optimizers=[opt])
    assert torch.equal(model.fc2.weight.grad, torch.cat([g2[:, :3], g2[:, 4:]], dim=1))

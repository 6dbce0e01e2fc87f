"""PruneGraph on every toy architecture: grouping, exactness against the zeroed dense net, twins."""

from __future__ import annotations

import copy
import time

import pytest
import torch
from prune_toys import D2RLQ, TOYS, DenseNet, Toy, outputs, randomize, zeroed_copy
from torch import nn

from edgerl.prune import Importance, layer_widths
from edgerl.prune.graph import PruneGraph, PruneGraphError


def _perturb(model: nn.Module, seed: int) -> nn.Module:
    """A target network that drifted from its online twin (same shapes, other values)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("toy", TOYS, ids=lambda t: t.name)
def test_groups_match_hand_written(toy: Toy) -> None:
    torch.manual_seed(0)
    graph = PruneGraph(toy.make(), toy.inputs(4), keep=toy.keep)
    found = {g.key: (set(g.out_layers), set(g.in_layers)) for g in graph.groups()}
    assert found == toy.groups


@pytest.mark.parametrize("toy", TOYS, ids=lambda t: t.name)
def test_pruned_equals_zeroed_dense(toy: Toy) -> None:
    torch.manual_seed(0)
    model = randomize(toy.make(), 1)
    model.train()
    twin = _perturb(copy.deepcopy(model), 2).requires_grad_(False)
    twin.eval()
    x = toy.inputs(16)
    shapes = [o.shape for o in outputs(model.eval(), x)]
    model.train()
    widths0 = layer_widths(model)
    graph = PruneGraph(model, toy.inputs(4), keep=toy.keep, twins=[twin])
    assert model.training and not twin.training, "train/eval flags must survive the trace"
    assert all(not p.requires_grad for p in twin.parameters())
    rng = torch.Generator().manual_seed(3)
    for _ in range(3):
        for info in graph.groups():
            n = info.width // 3
            if n == 0:
                continue
            idxs = sorted(torch.randperm(info.width, generator=rng)[:n].tolist())
            ref = zeroed_copy(model, info.out_layers, idxs).eval()
            ref_twin = zeroed_copy(twin, info.out_layers, idxs).eval()
            graph.prune(info.key, idxs)
            assert graph.group(info.key).width == info.width - n
            model.eval()
            for got, want in zip(outputs(model, x), outputs(ref, x), strict=True):
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
            for got, want in zip(outputs(twin, x), outputs(ref_twin, x), strict=True):
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
            model.train()
    assert [o.shape for o in outputs(model.eval(), x)] == shapes
    widths = layer_widths(model)
    assert layer_widths(twin) == widths
    assert all(widths[k] == widths0[k] for k in toy.keep), "heads keep their output width"
    assert all(widths[k] < widths0[k] for k in toy.groups), "every group shrank"


@pytest.mark.parametrize("toy", TOYS, ids=lambda t: t.name)
def test_prune_many_equals_pruning_group_by_group(toy: Toy) -> None:
    """One trace for every group (concat offsets and flatten strides change between groups):
    the same networks, twins and Adam state as one `prune` call (and one re-trace) per group."""
    torch.manual_seed(0)
    model = randomize(toy.make(), 1).eval()
    twin = _perturb(copy.deepcopy(model), 2)
    x = toy.inputs(16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sum(o.float().square().mean() for o in outputs_with_grad(model, x)).backward()
    opt.step()
    copies = copy.deepcopy((model, twin, opt))
    rng = torch.Generator().manual_seed(3)
    plan = {info.key: sorted(torch.randperm(info.width, generator=rng)[: max(1, info.width // 3)].tolist())
            for info in PruneGraph(model, toy.inputs(4), keep=toy.keep).groups()}
    assert len(plan) >= 2, "the test needs several groups"
    PruneGraph(model, toy.inputs(4), keep=toy.keep, twins=[twin]).prune_many(plan, [opt])
    ref_model, ref_twin, ref_opt = copies
    ref = PruneGraph(ref_model, toy.inputs(4), keep=toy.keep, twins=[ref_twin])
    for key, idxs in plan.items():
        ref.prune(key, idxs, [ref_opt])
    assert layer_widths(model) == layer_widths(ref_model) == layer_widths(twin)
    dense, now = layer_widths(toy.make()), layer_widths(model)
    assert all(now[k] < dense[k] for k in plan)
    for got, want in [(model, ref_model), (twin, ref_twin)]:
        for (name, p), q in zip(got.named_parameters(), want.parameters(), strict=True):
            assert torch.equal(p, q), name
        for a, b in zip(outputs(got, x), outputs(want, x), strict=True):
            assert torch.equal(a, b)
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(opt.state[p]["exp_avg_sq"], ref_opt.state[q]["exp_avg_sq"])


@pytest.mark.parametrize("toy", TOYS, ids=lambda t: t.name)
def test_training_continues_after_pruning(toy: Toy) -> None:
    torch.manual_seed(0)
    model = toy.make()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    graph = PruneGraph(model, toy.inputs(4), keep=toy.keep)
    for step in range(4):
        loss = sum(o.pow(2).mean() for o in outputs_with_grad(model, toy.inputs(8)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1:
            for info in graph.groups():
                graph.shrink_to(info.key, info.width // 2, Importance.L1, optimizers=[opt])
    live = {id(p) for p in model.parameters()}
    assert {id(p) for g in opt.param_groups for p in g["params"]} == live
    assert torch.isfinite(loss)


def outputs_with_grad(model: nn.Module, inputs) -> list[torch.Tensor]:
    out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    return list(out) if isinstance(out, tuple) else [out]


def test_importance_l1_l2_taylor() -> None:
    torch.manual_seed(0)
    toy = next(t for t in TOYS if t.name == "mlp")
    model = toy.make()
    graph = PruneGraph(model, toy.inputs(4), keep=toy.keep)
    with torch.no_grad():
        model.fc1.weight[5].zero_()
        model.fc2.weight[:, 5].zero_()
    l1 = graph.importance("fc1", "l1")
    assert l1.shape == (24,) and int(l1.argmin()) == 5
    assert int(graph.importance("fc1", Importance.L2).argmin()) == 5
    assert graph.lowest("fc1", 1) == [5]
    with pytest.raises(PruneGraphError, match="gradients"):
        graph.importance("fc1", "taylor")
    model(toy.inputs(8)).pow(2).mean().backward()
    taylor = graph.importance("fc1", "taylor")
    assert taylor.shape == (24,) and float(taylor[5]) == 0.0


def test_errors_are_actionable() -> None:
    toy = next(t for t in TOYS if t.name == "mlp")
    with pytest.raises(PruneGraphError, match="not a submodule"):
        PruneGraph(toy.make(), toy.inputs(2), keep=["nope"])
    graph = PruneGraph(toy.make(), toy.inputs(2), keep=toy.keep)
    with pytest.raises(PruneGraphError, match="leave none"):
        graph.prune("fc1", range(24))
    with pytest.raises(PruneGraphError, match="not a prunable group"):
        graph.prune("out", [0])
    with pytest.raises(PruneGraphError, match="indices"):
        graph.prune("fc1", [24])
    with pytest.raises(PruneGraphError, match="identical copy"):
        PruneGraph(
            toy.make(), toy.inputs(2), keep=toy.keep, twins=[type(toy.make())(hidden=(8, 8))]
        )


def test_unkept_output_layer_is_never_pruned() -> None:
    """Forgetting a head in `keep` must not shrink the action dimension."""
    toy = next(t for t in TOYS if t.name == "mlp")
    graph = PruneGraph(toy.make(), toy.inputs(2))
    assert [g.key for g in graph.groups()] == ["fc1", "fc2"]
    assert "out" in graph.skipped


# ---------------------------------------------------------------- torch-pruning issue #481
def test_raw_input_concat_is_refused() -> None:
    """A raw input concatenated with hidden features (DenseNet, D2RL) must not be pruned."""
    for model in (DenseNet(raw=True), D2RLQ(scaled=False)):
        with pytest.raises(PruneGraphError, match="#481.*InputScale"):
            PruneGraph(
                model, torch.randn(4, 7), keep=["head" if isinstance(model, DenseNet) else "out"]
            )


def test_raw_input_concat_is_mis_mapped_upstream() -> None:
    """Documents issue #481 in torch-pruning 1.6.1 (guard off): a raw input in a concat merges
    the DenseNet's layers into one group, and in a D2RL net removes an observation column
    instead of the hidden unit's column, with a forward that still runs.
    If this test fails, upstream fixed the bug and the strict guard can be relaxed."""
    torch.manual_seed(0)
    dense = PruneGraph(DenseNet(raw=True), torch.randn(4, 7), keep=["head"], strict=False)
    assert {"layers.0.fc", "layers.1.fc"} <= set(dense.groups()[0].out_layers)

    model = D2RLQ(scaled=False).eval()
    x = torch.randn(16, 7)
    ref = zeroed_copy(model, ["fc1"], [0])
    w2 = model.fc2.weight.detach().clone()  # columns: 7 observation features, then 10 hidden
    PruneGraph(model, torch.randn(4, 7), keep=["out"], strict=False).prune("fc1", [0])
    assert torch.equal(model.fc2.weight, w2[:, 1:])  # observation 0 went, not hidden unit 0 (col 7)
    assert not torch.allclose(model(x), ref(x), atol=1e-3)  # runs, but computes something else


def test_rebuild_time_1024_mlp() -> None:
    model = nn.Sequential(
        nn.Linear(17, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 6)
    )
    graph = PruneGraph(model, torch.randn(1, 17), keep=["4"])
    times = []
    for _ in range(3):
        start = time.perf_counter()
        graph.rebuild()
        times.append(time.perf_counter() - start)
    times.sort()
    print(
        f"rebuild 1024-1024 MLP: median {1e3 * times[1]:.1f} ms (build {1e3 * graph.build_seconds:.1f} ms)"
    )
    assert times[1] < 1.0
    graph.prune("0", range(0, 1024, 2))
    assert graph.group("0").width == 512  # the lazy rebuild sees the new shapes

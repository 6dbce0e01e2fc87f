"""Unstructured magnitude masking baseline."""

from __future__ import annotations

import pytest
import torch
from prune_toys import MLP, Impala

from edgerl.prune import CubicSchedule, MagnitudeMasker, OneShotSchedule, sparsity


def _train_step(model, opt, masker) -> None:
    opt.zero_grad()
    model(torch.randn(16, 7)).pow(2).mean().backward()
    opt.step()
    masker.apply()


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_gradual_masks_reach_the_target_and_stay(scope: str) -> None:
    torch.manual_seed(0)
    model = MLP(hidden=(32, 32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    masker = MagnitudeMasker(model, CubicSchedule(0.9, total_steps=50, every=5), scope=scope)
    for step in range(51):
        _train_step(model, opt, masker)
        masker.step(step)
    s = sparsity(model)
    assert s["total"] == pytest.approx(0.9, abs=0.01)
    if scope == "layer":
        for name in ("fc1.weight", "fc2.weight", "out.weight"):
            assert s[name] == pytest.approx(0.9, abs=0.02)
    _train_step(model, opt, masker)  # Adam would revive masked weights without apply()
    assert sparsity(model)["total"] == pytest.approx(s["total"])


def test_keep_layers_and_state_round_trip() -> None:
    torch.manual_seed(0)
    model = Impala()
    masker = MagnitudeMasker(model, OneShotSchedule(0.5, 10), keep=["pi", "v"])
    assert masker.step(0) == 0.5
    assert sparsity(model)["pi.weight"] == 0.0
    state = masker.state_dict()
    other = Impala()
    restored = MagnitudeMasker(other, CubicSchedule(0.1, 1), keep=["pi", "v"])
    restored.load_state_dict(state)
    assert restored.schedule == OneShotSchedule(0.5, 10)
    for name, mask in masker.masks.items():
        assert torch.equal(restored.masks[name], mask)
    weights = dict(other.named_parameters())
    for name, mask in restored.masks.items():
        assert (weights[name][~mask] == 0).all()  # loading applies the masks

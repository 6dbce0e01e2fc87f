"""edgerl.bench.macs: the static Linear count agrees with the forward-pass count on what it selects."""

from __future__ import annotations

import torch
from torch import nn

from edgerl.bench.macs import count_macs, linear_macs
from edgerl.nets.mlp import SquashedGaussianActor


def test_linear_macs_of_a_scope():
    actor = SquashedGaussianActor(11, 3, [12, 10])
    assert linear_macs(actor) == count_macs(actor, torch.zeros(1, 11)) == 11 * 12 + 12 * 10 + 2 * 10 * 3
    assert linear_macs(actor, lambda name: name != "log_std") == 11 * 12 + 12 * 10 + 10 * 3
    assert linear_macs(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())) == 0  # Linear layers only

"""Parameter and multiply-accumulate counts of a network, measured by running it once.

MACs count the Linear and Conv layers (what dominates inference); element-wise ops, pooling
and normalisation are left out, as is usual in pruning papers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def count_params(*modules: nn.Module) -> int:
    """Number of parameters (buffers such as normaliser statistics are not counted)."""
    seen: set[int] = set()
    total = 0
    for m in modules:
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
    return total


@torch.no_grad()
def count_macs(model: nn.Module, *inputs: Any) -> int:
    """MACs of one forward pass of ``model`` on ``inputs``, per sample of the batch."""
    total = 0

    def linear_hook(m: nn.Linear, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() // out.shape[0] * m.in_features if out.dim() > 1 else out.numel() * m.in_features

    def conv_hook(m: nn.Conv2d, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        per_out = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        total += out.numel() // out.shape[0] * per_out

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
    was_training = model.training
    model.eval()
    try:
        model(*inputs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return int(total)

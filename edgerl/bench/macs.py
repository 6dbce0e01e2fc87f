"""Parameter and multiply-accumulate counts of a network, measured by running it once.

MACs count the Linear and Conv layers (what dominates inference) and the gates' matrix products of
LSTM/GRU/RNN memories (per time step and layer: ``gates x hidden x (input + hidden)``, gates 4 for
an LSTM, 3 for a GRU, 1 for an RNN); element-wise ops, pooling and normalisation are left out, as is
usual in pruning papers.
"""

from __future__ import annotations

from collections.abc import Callable
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


def linear_macs(model: nn.Module, include: Callable[[str], bool] | None = None) -> int:
    """MACs per sample of the Linear layers of ``model`` that ``include`` selects by qualified name
    (default all), read from their shapes (``in x out`` each) without running the model: the count
    of a scope that no single forward pass runs alone (e.g. the deployed part of a SAC agent)."""
    return sum(m.in_features * m.out_features for name, m in model.named_modules()
               if isinstance(m, nn.Linear) and (include is None or include(name)))


RNN_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
"""Gate blocks of each torch recurrent mode (rows of ``weight_ih`` per hidden unit)."""


def rnn_step_macs(m: nn.RNNBase) -> int:
    """MACs of one time step of a torch LSTM/GRU/RNN for one sample: per layer and direction
    ``gates x hidden x (input + hidden)``, the input of layers after the first being the previous
    layer's output."""
    dirs = 2 if m.bidirectional else 1
    total = 0
    for layer in range(m.num_layers):
        width = m.input_size if layer == 0 else m.hidden_size * dirs
        total += dirs * RNN_GATES[m.mode] * m.hidden_size * (width + m.hidden_size)
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

    def rnn_hook(m: nn.RNNBase, inp: tuple, out: Any) -> None:
        nonlocal total
        x = inp[0]
        steps = x.shape[0] if x.dim() == 2 else x.shape[1 if m.batch_first else 0]
        total += int(steps) * rnn_step_macs(m)

    handles = []
    for m in model.modules():
        if isinstance(m, nn.RNNBase):
            handles.append(m.register_forward_hook(rnn_hook))
        elif isinstance(m, nn.Linear):
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

"""Optimizer surgery: keep an optimizer stepping the live parameters after structural pruning.

torch-pruning replaces every pruned `nn.Parameter` with a new, smaller object. An optimizer built
before the removal keeps stepping the dead objects without any error, so training silently stops
updating the pruned layers. `track_removal` fixes this generically:

1. Before pruning, each parameter's data is swapped for its flat element index (float64 arange,
   exact up to 2**53 elements), keeping the real values aside.
2. Whatever handler prunes the parameter (rows, columns, concat offsets, BatchNorm, ...), the values
   that survive ARE the kept flat indices.
3. Afterwards the real values are gathered back from the originals, and the optimizer is pointed at
   the new objects with every state tensor of the parameter's shape (Adam's exp_avg, exp_avg_sq,
   max_exp_avg_sq, momentum buffers, ...) gathered with the same indices; scalars such as `step`
   are kept as they were.

Gradients are set aside during the removal and sliced the same way (a float32 `.grad` cannot
sit on float64 data). Buffers (BatchNorm running statistics) are never touched here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn


@dataclass
class _Tracked:
    module: nn.Module
    params: dict[str, nn.Parameter]
    values: dict[str, torch.Tensor]  # the real data, set aside while indices stand in
    grads: dict[str, torch.Tensor | None]  # the real gradients, set aside likewise


class _Replacement(NamedTuple):
    new: nn.Parameter
    keep: torch.Tensor  # flat indices of the surviving elements of the old parameter
    old_shape: torch.Size


def _as_list(x: nn.Module | Sequence[nn.Module]) -> list[nn.Module]:
    return [x] if isinstance(x, nn.Module) else list(x)


@contextmanager
def track_removal(
    modules: nn.Module | Sequence[nn.Module],
    optimizers: Sequence[torch.optim.Optimizer] = (),
) -> Iterator[None]:
    """Context in which parameters of `modules` may be pruned (replaced by smaller objects).

    On exit every parameter again holds its real values (only the surviving entries) and every
    optimizer in `optimizers` refers to the new parameter objects, its per-element state sliced
    with the same indices.

    Example:
        >>> with track_removal([actor, actor_target], [actor_opt]):
        ...     graph.prune("fc1", [3, 7])

    Args:
        modules: models whose parameters may be replaced (online nets and their twins).
        optimizers: optimizers stepping any of those parameters.

    Raises:
        RuntimeError: a parameter vanished, or a pruning handler altered values rather than
            selecting them (the index trick cannot follow it).
    """
    tracked: list[_Tracked] = []
    seen: set[int] = set()  # a parameter shared by two modules is tracked once
    with torch.no_grad():
        for module in _as_list(modules):
            params = {n: p for n, p in module.named_parameters() if id(p) not in seen}
            seen.update(id(p) for p in params.values())
            values, grads = {}, {}
            for name, p in params.items():
                values[name], grads[name] = p.data, p.grad
                p.grad = None  # a float32 grad cannot sit on float64 data
                p.data = torch.arange(p.numel(), dtype=torch.float64, device=p.device).view(p.shape)
            tracked.append(_Tracked(module, params, values, grads))
    try:
        yield
    finally:
        remap = _restore(tracked)
        for opt in optimizers:
            _remap_optimizer(opt, remap)


def _restore(tracked: list[_Tracked]) -> dict[nn.Parameter, _Replacement]:
    """Put real values back; return old param -> replacement for every replaced/sliced one."""
    remap: dict[nn.Parameter, _Replacement] = {}
    errors: list[str] = []
    with torch.no_grad():
        for t in tracked:
            now = dict(t.module.named_parameters())
            for name, old in t.params.items():
                real, grad = t.values[name], t.grads[name]
                old_shape = real.shape
                new = now.get(name)
                if new is None:
                    errors.append(f"parameter {name!r} disappeared during pruning")
                    old.data, old.grad = real, grad
                    continue
                idx = new.data.reshape(-1)
                keep = idx.long()
                if idx.dtype != torch.float64 or not torch.equal(keep.double(), idx):
                    errors.append(f"parameter {name!r} was modified, not sliced, during pruning")
                    continue
                if new is old and keep.numel() == real.numel():
                    old.data, old.grad = real, grad  # untouched
                    continue
                new.data = real.reshape(-1)[keep].view(new.shape).clone()
                new.grad = None if grad is None else grad.reshape(-1)[keep].view(new.shape).clone()
                if new is not old:
                    old.data, old.grad = real, grad  # the dead object holds no index values
                remap[old] = _Replacement(new, keep, old_shape)
    if errors:
        raise RuntimeError("optimizer surgery failed: " + "; ".join(errors))
    return remap


def _remap_optimizer(opt: torch.optim.Optimizer, remap: dict[nn.Parameter, _Replacement]) -> None:
    """Point `opt` at the new parameters and slice their per-element state."""
    for group in opt.param_groups:
        params = group["params"]
        for i, p in enumerate(params):
            if p not in remap:
                continue
            new, keep, old_shape = remap[p]
            params[i] = new
            state = opt.state.pop(p, None)
            if state is None:
                continue
            sliced = {}
            for k, v in state.items():
                if torch.is_tensor(v) and v.dim() > 0 and v.shape == old_shape:
                    v = v.reshape(-1)[keep.to(v.device)].view(new.shape).clone()
                sliced[k] = v
            opt.state[new] = sliced

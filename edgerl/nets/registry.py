"""Registry mapping a spec's ``type`` to the class that rebuilds it."""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from typing import Any

import torch
from torch import nn

from edgerl.errors import CheckpointError, EdgerlError

_NETS: dict[str, type[nn.Module]] = {}


def register_net(name: str):
    """Class decorator: make ``name`` rebuildable by :func:`build_net`.

    A registered class implements ``spec() -> dict`` (its constructor keyword arguments, derived
    from the current layer sizes) and is constructible as ``cls(**spec_kwargs)``.
    """

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        _NETS[name] = cls
        cls.net_type = name  # type: ignore[attr-defined]
        return cls

    return deco


def net_spec(net: nn.Module) -> dict[str, Any]:
    """``{"type": ..., "kwargs": {...}}`` describing ``net`` as it is now (after any pruning)."""
    return {"type": net.net_type, "kwargs": net.spec()}  # type: ignore[attr-defined]


MAX_SPEC_ITEMS = 4096
"""Spec kwargs hold widths and shapes: a list longer than this (or nesting deeper than 8) is damage."""


def _net_class(spec: Any, name: str) -> type[nn.Module]:
    # Import the modules that register nets, so a spec of any kind can be rebuilt.
    from edgerl.nets import impala, mlp, nature, ofenet, recurrent  # noqa: F401

    if not isinstance(spec, dict) or not isinstance(spec.get("kwargs"), dict):
        raise CheckpointError(f"{name}: spec must be {{'type': ..., 'kwargs': {{...}}}}, got a "
                              f"{type(spec).__name__}; the checkpoint is damaged")
    cls = _NETS.get(spec.get("type")) if isinstance(spec.get("type"), str) else None
    if cls is None:
        raise CheckpointError(f"{name}: unknown network type {str(spec.get('type'))[:60]!r}; known: {sorted(_NETS)}")
    params = inspect.signature(cls.__init__).parameters
    required = {n for n, p in params.items() if n != "self" and p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    missing = sorted(required - set(spec["kwargs"]))
    extra = sorted(set(spec["kwargs"]) - set(params) - {"self"})
    if missing or extra:
        raise CheckpointError(f"{name}: {spec['type']} spec " + "; ".join(
            part for part in (f"lacks {missing}" if missing else "", f"has unknown {[str(e)[:40] for e in extra[:5]]}"
                              if extra else "") if part) + "; the checkpoint is damaged")
    _check_plain(spec["kwargs"], name, 0)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: the meta build below still checks
        hints = {}
    for key, value in spec["kwargs"].items():
        if key in hints and not _matches(value, hints[key]):
            raise CheckpointError(f"{name}: {spec['type']} spec has {key}={str(value)[:60]}, expected "
                                  f"{_hint_name(hints[key])}; the checkpoint is damaged")
    return cls


def _matches(value: Any, hint: Any) -> bool:
    """``value`` fits a constructor annotation (int, float, bool, str, Sequence[...], dict, Any)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, collections.abc.Sequence):
        return isinstance(value, (list, tuple)) and (not args or all(_matches(v, args[0]) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True  # an annotation this check does not know: the meta build decides


def _hint_name(hint: Any) -> str:
    if typing.get_args(hint):
        return str(hint).replace("typing.", "").replace("collections.abc.", "")
    return getattr(hint, "__name__", str(hint))


def _check_plain(value: Any, name: str, depth: int) -> None:
    """Spec values are small plain data: numbers, strings, short lists and dicts of them."""
    if depth > 8:
        raise CheckpointError(f"{name}: spec nests deeper than 8 levels; the checkpoint is damaged")
    if isinstance(value, (list, tuple, dict)):
        if len(value) > MAX_SPEC_ITEMS:
            raise CheckpointError(f"{name}: spec holds a list of {len(value)} items (at most {MAX_SPEC_ITEMS}); "
                                  "the checkpoint is damaged")
        for v in value.values() if isinstance(value, dict) else value:
            _check_plain(v, name, depth + 1)
    elif isinstance(value, int) and not -(2**31) < value < 2**31:
        raise CheckpointError(f"{name}: spec holds {value}, far above any layer width; the checkpoint is damaged")
    elif not isinstance(value, (int, float, str, bool, type(None))):
        raise CheckpointError(f"{name}: spec holds a {type(value).__name__}; the checkpoint is damaged")


def _construct(cls: type[nn.Module], spec: dict[str, Any], name: str) -> nn.Module:
    try:
        return cls(**spec["kwargs"])
    except EdgerlError:  # the net's own check of its arguments says what is wrong
        raise
    except Exception as e:  # strings or negatives where widths belong: torch raises several kinds
        first = (str(e).strip().splitlines() or [""])[0]
        raise CheckpointError(f"{name}: {spec['type']} cannot be built from spec kwargs "
                              f"({type(e).__name__}: {first[:160]}); the checkpoint is damaged") from None


def build_net(spec: dict[str, Any], state: dict[str, Any] | None = None, name: str = "network") -> nn.Module:
    """Rebuild a network from a spec made by :func:`net_spec`: fresh weights, or ``state`` loaded.

    With ``state``, the spec is first built on the meta device (no memory) and its parameter
    names and shapes compared with the stored tensors, so a damaged spec (a width of 4,000,000
    beside 64-wide tensors) is refused before anything is allocated.

    Raises:
        CheckpointError: unknown type, missing/extra/ill-typed kwargs, or a state that does not
            match the spec.
    """
    cls = _net_class(spec, name)
    if state is None:
        return _construct(cls, spec, name)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{name}: state must map parameter names to tensors; the checkpoint is damaged")
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in _construct(cls, spec, name).state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in state.items()}
    if shapes != stored:
        diff = sorted(set(shapes) ^ set(stored)) or [k for k in shapes if shapes[k] != stored[k]]
        key = diff[0]
        raise CheckpointError(
            f"{name} does not match its spec {spec['type']} {str(spec['kwargs'])[:120]} ({key}: the spec needs "
            f"{shapes.get(key, 'none')}, the file stores {stored.get(key, 'none')}); the checkpoint is damaged")
    net = _construct(cls, spec, name)
    net.load_state_dict(state)
    return net


def net_entries(owner: Any, names: Any) -> dict[str, dict[str, Any]]:
    """``{name: {"spec", "state"}}`` of the networks ``owner.<name>`` (checkpoint form)."""
    return {n: {"spec": net_spec(getattr(owner, n)), "state": getattr(owner, n).state_dict()} for n in names}


def restore_nets(owner: Any, entries: dict[str, dict[str, Any]], names: Any) -> None:
    """Rebuild ``owner.<name>`` from checkpoint entries at their saved (possibly pruned) widths."""
    for name in names:
        entry = entries.get(name) if isinstance(entries, dict) else None
        if not isinstance(entry, dict) or "spec" not in entry or "state" not in entry:
            raise CheckpointError(f"checkpoint net {name!r} is missing or lacks its spec or state; the file is damaged")
        setattr(owner, name, build_net(entry["spec"], entry["state"], name=f"checkpoint net {name!r}"))

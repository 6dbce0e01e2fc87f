"""Registry mapping a spec's ``type`` to the class that rebuilds it."""

from __future__ import annotations

from typing import Any

from torch import nn

from edgerl.errors import CheckpointError

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


def build_net(spec: dict[str, Any]) -> nn.Module:
    """Rebuild a network (with fresh weights) from a spec made by :func:`net_spec`."""
    # Import the modules that register nets, so a spec of any kind can be rebuilt.
    from edgerl.nets import impala, mlp, nature, ofenet  # noqa: F401

    try:
        cls = _NETS[spec["type"]]
    except (KeyError, TypeError) as e:
        raise CheckpointError(
            f"unknown network type {spec.get('type') if isinstance(spec, dict) else spec!r}; "
            f"known: {sorted(_NETS)}"
        ) from e
    return cls(**spec["kwargs"])


def net_entries(owner: Any, names: Any) -> dict[str, dict[str, Any]]:
    """``{name: {"spec", "state"}}`` of the networks ``owner.<name>`` (checkpoint form)."""
    return {n: {"spec": net_spec(getattr(owner, n)), "state": getattr(owner, n).state_dict()} for n in names}


def restore_nets(owner: Any, entries: dict[str, dict[str, Any]], names: Any) -> None:
    """Rebuild ``owner.<name>`` from checkpoint entries at their saved (possibly pruned) widths."""
    for name in names:
        net = build_net(entries[name]["spec"])
        net.load_state_dict(entries[name]["state"])
        setattr(owner, name, net)

"""Network architectures. Every net can report a spec (its type and per-layer widths) and be
rebuilt from that spec alone, so a pruned network round-trips through a checkpoint without
torch-pruning or pickled modules."""

from __future__ import annotations

from edgerl.nets.registry import build_net, net_spec, register_net

__all__ = ["build_net", "net_spec", "register_net"]

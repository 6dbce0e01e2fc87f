"""Physically smaller networks that compute the same deployed function."""

from __future__ import annotations

from edgerl.compact.api import CompactReport, compact_checkpoint

__all__ = ["CompactReport", "compact_checkpoint"]

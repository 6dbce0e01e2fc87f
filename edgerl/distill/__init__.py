"""Policy distillation: a small student learns a teacher's deployed function (``edgerl distill``)."""

from __future__ import annotations

from edgerl.distill.api import DistillReport, distill, distill_loss, state_paths
from edgerl.distill.config import DistillConfig

__all__ = ["DistillConfig", "DistillReport", "distill", "distill_loss", "state_paths"]

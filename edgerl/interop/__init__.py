"""Policies trained by other libraries (Stable-Baselines3, rsl_rl, CleanRL, skrl) as edgerl policy
checkpoints: one reader module per library, each producing an
:class:`~edgerl.interop.common.ImportedPolicy`; :func:`import_policy` turns it into the
``kind: "policy"`` checkpoint every later command reads. Nothing is unpickled."""

from __future__ import annotations

from edgerl.interop.api import LIBRARIES, import_policy, read_obs_stats
from edgerl.interop.common import ImportedPolicy, ImportLayoutError

__all__ = ["LIBRARIES", "ImportLayoutError", "ImportedPolicy", "import_policy", "read_obs_stats"]

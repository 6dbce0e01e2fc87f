"""User-facing errors. The classes live in the torch-free runtime so a robot sees the same ones."""

from __future__ import annotations

from edgerl.runtime.errors import (
    BackendUnavailableError,
    BundleError,
    CheckpointError,
    ConfigError,
    EdgerlError,
    ObservationError,
    ProfileError,
)

__all__ = [
    "BackendUnavailableError",
    "BundleError",
    "CheckpointError",
    "ConfigError",
    "EdgerlError",
    "ObservationError",
    "ProfileError",
]

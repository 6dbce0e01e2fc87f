"""Errors a user can act on. Torch-free: shared by the training side and the robot runtime."""

from __future__ import annotations


class EdgerlError(Exception):
    """Base class of every error edgerl reports to a user (the CLI prints it in one line)."""


class CheckpointError(EdgerlError):
    """A checkpoint is missing, truncated, corrupt, foreign or of an unknown format version."""


class BundleError(EdgerlError):
    """A deployment bundle is missing a file, was modified, or does not match its manifest."""


class ObservationError(EdgerlError, ValueError):
    """An observation has the wrong shape or dtype, or contains NaN or infinity."""


class BackendUnavailableError(EdgerlError):
    """An optional backend (TensorRT, ONNX Runtime CUDA, ...) is not installed or not usable."""


class ProfileError(EdgerlError):
    """A target profile or recipe names an unknown key or an invalid value."""


class ConfigError(EdgerlError, ValueError):
    """A training configuration value is invalid."""


class ActionError(EdgerlError):
    """The policy network produced an unusable action (NaN, infinity or an invalid discrete index)."""

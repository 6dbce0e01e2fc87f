"""edgerl runtime: what runs on the robot. numpy + onnxruntime (+ TensorRT where present); no torch.

This folder is copied into every bundle as ``runtime/edgerl_runtime/`` and must import standalone:
relative imports only, heavy optional libraries imported inside the code that needs them.
"""

from __future__ import annotations

from .backends import BACKENDS, Backend, available_backends, get_backend, register_backend
from .bundle import RUNTIME_VERSION, read_manifest, verify_bundle, write_bundle
from .contract import Contract, parse_contract, read_contract
from .errors import (
    ActionError,
    BackendUnavailableError,
    BundleError,
    EdgerlError,
    ObservationError,
    ProfileError,
)
from .loop import ControlLoop, LoopSummary, apply_realtime
from .policy import Policy
from .profile import (
    TargetProfile,
    load_profile,
    profile_from_json,
    profile_to_json,
    validate_profile,
)

__version__ = RUNTIME_VERSION

__all__ = [
    "BACKENDS",
    "ActionError",
    "Backend",
    "BackendUnavailableError",
    "BundleError",
    "Contract",
    "ControlLoop",
    "EdgerlError",
    "LoopSummary",
    "ObservationError",
    "Policy",
    "ProfileError",
    "TargetProfile",
    "apply_realtime",
    "available_backends",
    "get_backend",
    "load_profile",
    "parse_contract",
    "profile_from_json",
    "profile_to_json",
    "read_contract",
    "read_manifest",
    "register_backend",
    "validate_profile",
    "verify_bundle",
    "write_bundle",
]

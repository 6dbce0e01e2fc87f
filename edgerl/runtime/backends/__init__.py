"""Inference backends, one registry: name -> class.

Every backend runs ``policy.onnx`` (input ``obs``, output ``action``). Optional heavy libraries
(onnxruntime's CUDA provider, TensorRT, cuda-python) are imported inside the code that needs them;
``available()`` says whether a backend can run here and, if not, why.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from ..errors import BackendUnavailableError, ProfileError
from ..profile import TargetProfile

BACKENDS: dict[str, type[Backend]] = {}
"""Registered backends by name (``trt``, ``ort-cuda``, ``ort-cpu``)."""


def register_backend(name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator adding a backend to :data:`BACKENDS` under ``name``."""

    def deco(cls: type[Backend]) -> type[Backend]:
        if name in BACKENDS:
            raise ValueError(f"backend {name!r} is registered twice ({BACKENDS[name].__name__}, {cls.__name__})")
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return deco


def get_backend(name: str) -> type[Backend]:
    """The backend class registered as ``name``."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ProfileError(f"unknown backend {name!r}; known backends: {sorted(BACKENDS)}") from None


def available_backends() -> dict[str, tuple[bool, str]]:
    """``{name: (available, reason)}`` for every registered backend on this machine."""
    return {name: cls.available() for name, cls in BACKENDS.items()}


class Backend(abc.ABC):
    """Runs one ONNX policy. Subclasses set the attributes below in ``__init__``."""

    name: ClassVar[str] = ""
    input_name: str
    """ONNX input tensor name (``obs``)."""
    output_name: str
    """ONNX output tensor name (``action``)."""
    input_dtype: np.dtype
    """dtype the graph takes (float32, float16 or uint8)."""
    input_shape: tuple[int, ...]
    """Per-sample input shape (without the batch dimension)."""
    output_shape: tuple[int, ...]
    """Per-sample output shape."""
    output_dtype: np.dtype
    """dtype the graph returns."""
    max_batch: int | None = None
    """Largest batch ``run`` accepts (None: any)."""
    precision: str = "fp32"
    """Precision the backend computes in (``fp32``/``fp16``), for logs and tolerances."""
    single_input: np.ndarray
    """Preallocated ``[1, *input_shape]`` buffer: fill it, then call :meth:`run_single`."""

    @classmethod
    @abc.abstractmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this backend can run on this machine, and why not (with an install hint)."""

    @abc.abstractmethod
    def __init__(self, onnx_path: str | os.PathLike, profile: TargetProfile, cache_dir: str | os.PathLike) -> None:
        """Load ``onnx_path`` for ``profile``; ``cache_dir`` may hold built engines."""

    @abc.abstractmethod
    def run(self, obs_batch: np.ndarray) -> np.ndarray:
        """Run a contiguous ``[batch, *input_shape]`` array of ``input_dtype``; returns actions."""

    def run_single(self) -> np.ndarray:
        """Run :attr:`single_input` (batch 1). The result may be a reused buffer: copy it."""
        return self.run(self.single_input)

    def describe(self) -> str:
        """One line for logs: backend, precision, device."""
        return f"{self.name} ({self.precision})"

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold no manual resources
        """Release device memory and streams (optional)."""

    @classmethod
    def require(cls) -> None:
        """Raise :class:`BackendUnavailableError` with the reason if the backend cannot run."""
        ok, reason = cls.available()
        if not ok:
            raise BackendUnavailableError(f"backend {cls.name!r} unavailable: {reason}")


# Registration happens on import; these modules import their heavy libraries lazily.
from . import c as _c  # noqa: E402,F401
from . import ort as _ort  # noqa: E402,F401
from . import tensorrt as _tensorrt  # noqa: E402,F401

"""Inference backends, one registry: name -> class.

Every backend runs ``policy.onnx`` (input ``obs``, output ``action``; a recurrent graph also takes
its state ``h_in [, c_in]`` and returns ``h_out [, c_out]``, see :func:`recurrent_io`). Optional heavy libraries
(onnxruntime's CUDA provider, TensorRT, cuda-python) are imported inside the code that needs them;
``available()`` says whether a backend can run here and, if not, why.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from ..contract import RECURRENT_STATES, state_io_names
from ..errors import BackendUnavailableError, BundleError, ProfileError
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


def recurrent_io(inputs: list[str], outputs: list[str], path: str) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    """Split a graph's tensor names into ``(obs, action, state inputs, state outputs)``: one input and
    one output, or a recurrent graph's ``obs, h_in [, c_in] -> action, h_out [, c_out]``.

    Raises:
        BundleError: Any other signature (names what was found and what is expected).
    """
    if len(inputs) == 1 and len(outputs) == 1:
        return inputs[0], outputs[0], (), ()
    for kind in RECURRENT_STATES:  # any order (TensorRT lists an engine's tensors its own way)
        ins, outs = state_io_names(kind)
        obs, act = [n for n in inputs if n not in ins], [n for n in outputs if n not in outs]
        if (len(obs) == len(act) == 1 and sorted(inputs) == sorted([*obs, *ins])
                and sorted(outputs) == sorted([*act, *outs])):
            return obs[0], act[0], ins, outs
    raise BundleError(f"{path}: expected one input 'obs' and one output 'action' (a recurrent graph: obs, h_in[, c_in] "
                      f"-> action, h_out[, c_out]), got {inputs} -> {outputs}; re-export the policy")


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
    state_inputs: tuple[str, ...] = ()
    """A recurrent graph's state inputs (``h_in``, ``c_in``); empty for a feed-forward graph."""
    state_outputs: tuple[str, ...] = ()
    """The next-state outputs paired with :attr:`state_inputs` (``h_out``, ``c_out``)."""
    state_shape: tuple[int, ...] = ()
    """One state tensor at batch 1: ``(layers, 1, hidden)`` (batch axis 1)."""
    single_state: tuple[np.ndarray, ...] = ()
    """Preallocated float32 state inputs at batch 1, read by :meth:`run_single` (the caller writes
    the state to feed into them: the previous step's outputs, or zeros at episode start)."""
    single_state_out: tuple[np.ndarray, ...] = ()
    """The state outputs of the last :meth:`run_single` (reused buffers: copy them)."""

    @classmethod
    @abc.abstractmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this backend can run on this machine, and why not (with an install hint)."""

    @abc.abstractmethod
    def __init__(self, onnx_path: str | os.PathLike, profile: TargetProfile, cache_dir: str | os.PathLike) -> None:
        """Load ``onnx_path`` for ``profile``; ``cache_dir`` may hold built engines."""

    @abc.abstractmethod
    def run(self, obs_batch: np.ndarray) -> np.ndarray:
        """Run a contiguous ``[batch, *input_shape]`` array of ``input_dtype``; returns actions (a
        recurrent graph runs from the zero state: the first step of ``batch`` episodes)."""

    def run_single(self) -> np.ndarray:
        """Run :attr:`single_input` (and :attr:`single_state`) at batch 1. The result may be a reused
        buffer: copy it. A recurrent graph's next state lands in :attr:`single_state_out`."""
        return self.run(self.single_input)

    def zero_state(self, batch: int) -> list[np.ndarray]:
        """Float32 zero states at ``batch`` (episode start), one per :attr:`state_inputs`."""
        if not self.state_inputs:
            return []
        layers, _, hidden = self.state_shape
        return [np.zeros((layers, batch, hidden), np.float32) for _ in self.state_inputs]

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

"""ONNX Runtime backends: ``ort-cpu`` and ``ort-cuda``."""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, BundleError
from ..graph import graph_content, graph_precision
from ..profile import TargetProfile
from . import Backend, recurrent_io, register_backend

log = logging.getLogger(__name__)

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}
_ORT_HINT = "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA); install only one of the two"


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise BackendUnavailableError(f"onnxruntime is not installed ({e}): {_ORT_HINT}") from None
    return onnxruntime


def _np_dtype(ort_type: str, what: str, path: str) -> np.dtype:
    try:
        return np.dtype(_ORT_DTYPES[ort_type])
    except KeyError:
        raise BundleError(f"{path}: {what} has unsupported type {ort_type}; re-export the policy") from None


def _state_shape(inputs: list[Any], path: str) -> tuple[int, ...]:
    """``(layers, 1, hidden)`` of a recurrent graph's state inputs (float32 ``[layers, batch, hidden]``)."""
    shapes = {tuple(i.shape[:1]) + tuple(i.shape[2:]) for i in inputs}
    if (len(shapes) != 1 or any(i.type != "tensor(float)" or len(i.shape) != 3 for i in inputs)
            or not all(isinstance(d, int) and d > 0 for d in next(iter(shapes)))):
        raise BundleError(f"{path}: state inputs {[(i.name, i.type, i.shape) for i in inputs]} must all be float32 "
                          "[layers, batch, hidden] with fixed layers and hidden; re-export the policy")
    layers, hidden = next(iter(shapes))
    return (layers, 1, hidden)


class _OrtBackend(Backend):
    """Shared session setup; subclasses choose the execution providers."""

    def _providers(self, ort: Any) -> list[Any]:
        raise NotImplementedError

    def __init__(self, onnx_path: str | os.PathLike, profile: TargetProfile, cache_dir: str | os.PathLike) -> None:
        self.require()
        ort = _import_ort()
        path = os.fspath(onnx_path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = profile.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._sess = ort.InferenceSession(path, so, providers=self._providers(ort))
        except Exception as e:  # ORT raises its own exception types for bad models
            raise BundleError(f"{path}: ONNX Runtime cannot load the model ({e}); re-export the policy") from None
        inputs, outputs = self._sess.get_inputs(), self._sess.get_outputs()
        obs_name, act_name, self.state_inputs, self.state_outputs = recurrent_io(
            [i.name for i in inputs], [o.name for o in outputs], path)
        inp = next(i for i in inputs if i.name == obs_name)
        self.input_name, self.output_name = obs_name, act_name
        self.input_dtype = _np_dtype(inp.type, f"input {inp.name!r}", path)
        if any(not isinstance(d, int) for d in inp.shape[1:]):
            raise BundleError(f"{path}: input {inp.name!r} has dynamic non-batch dims {inp.shape}; "
                              "only the batch dimension may be dynamic")
        self.input_shape = tuple(inp.shape[1:])
        if self.state_inputs:
            self.state_shape = _state_shape([i for i in inputs if i.name in self.state_inputs], path)
        # ORT runs the graph as exported: its precision is the graph's content (Q/DQ nodes, float16 weights).
        try:
            self.precision = graph_precision(graph_content(path))
        except (OSError, ValueError):
            self.precision = "fp16" if self.input_dtype == np.float16 else "fp32"
        self.single_input = np.zeros((1, *self.input_shape), self.input_dtype)
        self.single_state = tuple(self.zero_state(1))
        # One dry run tells the output's per-sample shape and dtype (dims may be symbolic in the graph).
        first = self._sess.run([self.output_name, *self.state_outputs], self._feed(self.single_input, self.single_state))
        self.output_shape, self.output_dtype = tuple(first[0].shape[1:]), first[0].dtype
        if any(o.shape != self.state_shape or o.dtype != np.float32 for o in first[1:]):
            raise BundleError(f"{path}: state outputs {[(o.shape, str(o.dtype)) for o in first[1:]]} do not match the "
                              f"float32 state inputs {self.state_shape}; re-export the policy")
        self.single_state_out = tuple(np.zeros(self.state_shape, np.float32) for _ in self.state_outputs)

    def _feed(self, obs: np.ndarray, state: tuple[np.ndarray, ...] | list[np.ndarray]) -> dict[str, np.ndarray]:
        return {self.input_name: obs, **dict(zip(self.state_inputs, state, strict=True))}

    def run(self, obs_batch: np.ndarray) -> np.ndarray:
        if self.state_inputs:
            return self._sess.run([self.output_name], self._feed(obs_batch, self.zero_state(len(obs_batch))))[0]
        return self._sess.run([self.output_name], {self.input_name: obs_batch})[0]

    def run_single(self) -> np.ndarray:
        if not self.state_inputs:
            return self.run(self.single_input)
        out = self._sess.run([self.output_name, *self.state_outputs], self._feed(self.single_input, self.single_state))
        for buf, got in zip(self.single_state_out, out[1:], strict=True):
            buf[...] = got
        return out[0]

    @property
    def providers(self) -> list[str]:
        """Execution providers ONNX Runtime actually uses for this session."""
        return list(self._sess.get_providers())

    def describe(self) -> str:
        return f"{self.name} ({self.precision}, providers {self.providers})"


@register_backend("ort-cpu")
class OrtCpuBackend(_OrtBackend):
    """ONNX Runtime on the CPU: intra-op threads from the profile, one inter-op thread, sequential.

    Batch 1 goes through IO binding onto preallocated input/output buffers: p50 per call
    9.5 -> 4.8 us (MLP 11-16-3) and 18.6 -> 12.4 us (17-256-256-6), p99 also lower (ORT 1.32,
    1 thread, 20 interleaved blocks of 5000 calls on the 2-core dev machine). Call
    ``run_with_iobinding`` without a ``RunOptions``: passing one costs ~35 us in ORT 1.32's
    Python wrapper, more than binding saves.
    """

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            ort = _import_ort()
        except BackendUnavailableError as e:
            return False, str(e)
        if "CPUExecutionProvider" not in ort.get_available_providers():
            return False, f"CPUExecutionProvider missing from {ort.get_available_providers()}"
        return True, f"onnxruntime {ort.__version__}"

    def _providers(self, ort: Any) -> list[Any]:
        return ["CPUExecutionProvider"]

    def __init__(self, onnx_path: str | os.PathLike, profile: TargetProfile, cache_dir: str | os.PathLike) -> None:
        super().__init__(onnx_path, profile, cache_dir)
        ort = _import_ort()
        # OrtValues created from numpy arrays alias their memory: writing single_input in place
        # feeds the next run, and the result lands in _single_output without allocation.
        self._single_output = np.zeros((1, *self.output_shape), self.output_dtype)
        self._binding = self._sess.io_binding()
        self._bound = (
            ort.OrtValue.ortvalue_from_numpy(self.single_input),
            ort.OrtValue.ortvalue_from_numpy(self._single_output),
        )
        self._binding.bind_ortvalue_input(self.input_name, self._bound[0])
        self._binding.bind_ortvalue_output(self.output_name, self._bound[1])
        # A recurrent graph's state: inputs read from single_state, outputs written to single_state_out.
        self._state_values = []
        for name, buf in (*zip(self.state_inputs, self.single_state, strict=True),
                          *zip(self.state_outputs, self.single_state_out, strict=True)):
            value = ort.OrtValue.ortvalue_from_numpy(buf)
            self._state_values.append(value)
            (self._binding.bind_ortvalue_input if name in self.state_inputs else
             self._binding.bind_ortvalue_output)(name, value)

    def run_single(self) -> np.ndarray:
        self._sess.run_with_iobinding(self._binding)
        return self._single_output


@register_backend("ort-cuda")
class OrtCudaBackend(_OrtBackend):
    """ONNX Runtime with the CUDA execution provider (nodes CUDA lacks fall back to the CPU)."""

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            ort = _import_ort()
        except BackendUnavailableError as e:
            return False, str(e)
        providers = ort.get_available_providers()
        if "CUDAExecutionProvider" not in providers:
            return False, (f"CUDAExecutionProvider not in onnxruntime.get_available_providers() {providers}: "
                           "pip uninstall onnxruntime && pip install onnxruntime-gpu (desktop), or install "
                           "NVIDIA's onnxruntime-gpu wheel for your JetPack (Jetson)")
        return True, f"onnxruntime {ort.__version__} with CUDA"

    def _providers(self, ort: Any) -> list[Any]:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    def __init__(self, onnx_path: str | os.PathLike, profile: TargetProfile, cache_dir: str | os.PathLike) -> None:
        super().__init__(onnx_path, profile, cache_dir)
        if "CUDAExecutionProvider" not in self.providers:
            # ORT falls back to the CPU when CUDA/cuDNN libraries fail to load; that is not this backend.
            raise BackendUnavailableError(
                f"onnxruntime could not start the CUDA provider (session uses {self.providers}); check that the "
                "CUDA and cuDNN libraries matching your onnxruntime-gpu build are installed (see ORT's log above)"
            )

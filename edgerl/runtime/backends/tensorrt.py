"""TensorRT backend ``trt``: build an engine from ``policy.onnx`` on the device, cache it, run it.

Engines are not portable across GPUs or TensorRT versions, so the bundle ships the ONNX file and
the engine is built on the device and cached under ``cache/``, keyed by ONNX sha256, TensorRT
version, GPU name and SM, precision and max batch. The ``.json`` record next to each engine holds
the engine's own sha256: a cached engine is deserialized only if it matches (else it is rebuilt).

Precision: TensorRT >= 11 is strongly typed and has no FP16/INT8 builder flags: the precision is
the ONNX graph's (a float16 graph, or Q/DQ nodes for int8, built as they are), so an fp16 or int8
profile needs that graph exported into the bundle (a float32 graph builds as FP32, with a
warning). Below 11, ``BuilderFlag.FP16`` gives FP16 kernels (fp16 profiles, fp32 graph) and
``BuilderFlag.INT8`` lets the builder use the int8 kernels a Q/DQ graph asks for. The flags are
chosen by pure functions (:func:`network_flag_names`, :func:`builder_flag_names`) tested without
TensorRT, and every builder setting is part of the engine's cache key (:func:`builder_settings`).

Version notes: TensorRT 8.5 needs the EXPLICIT_BATCH network flag (implicit batch was removed in
10, the flag deprecated, and it may be gone in 11); the name-based I/O API used here
(``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) exists from 8.5 on.

A recurrent graph (``obs, h_in[, c_in] -> action, h_out[, c_out]``) gets an optimization profile
for each state input too (batch on axis 1, :func:`profile_shapes`) and a device buffer per state
tensor; ``run_single`` copies ``single_state`` in and ``single_state_out`` back with the action.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailableError, BundleError
from ..fileio import atomic_write, atomic_write_text, sha256_file
from ..graph import graph_content, graph_precision
from ..profile import TargetProfile
from . import Backend, recurrent_io, register_backend

log = logging.getLogger(__name__)

TRT_HINT = (
    "desktop: pip install 'edgerl[trt]' (tensorrt + cuda-python); on Jetson, TensorRT comes with JetPack: "
    "sudo apt install python3-libnvinfer, create the venv with --system-site-packages, and pip install cuda-python "
    "matching the CUDA major version"
)


def import_tensorrt() -> Any:
    """``import tensorrt`` or raise :class:`BackendUnavailableError` with an install hint."""
    try:
        import tensorrt
    except ImportError as e:
        raise BackendUnavailableError(f"TensorRT not installed ({e}); {TRT_HINT}") from None
    return tensorrt


def import_cudart() -> Any:
    """The CUDA runtime bindings of cuda-python (new and old module layout)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as e:
            raise BackendUnavailableError(
                f"cuda-python not installed ({e}); pip install cuda-python with the same major version as "
                "your CUDA (e.g. 'cuda-python>=12,<13' for CUDA 12.x)"
            ) from None
    return cudart


def _cuda(cudart: Any, result: tuple, what: str) -> Any:
    """Check a cuda-python ``(err, *values)`` result; return the value(s)."""
    err, values = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(err)[1]
        raise RuntimeError(f"CUDA call {what} failed: {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if len(values) == 1 else values


def gpu_info(cudart: Any) -> tuple[str, int, int]:
    """Name and compute capability (major, minor) of the current CUDA device."""
    dev = _cuda(cudart, cudart.cudaGetDevice(), "cudaGetDevice")
    prop = _cuda(cudart, cudart.cudaGetDeviceProperties(dev), "cudaGetDeviceProperties")
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    return name.rstrip("\x00").strip(), int(prop.major), int(prop.minor)


_TRT_LOGGER: Any = None


def trt_logger(trt: Any) -> Any:
    """The process-wide TensorRT logger (TensorRT keeps the first logger it is given)."""
    global _TRT_LOGGER
    if _TRT_LOGGER is None:
        _TRT_LOGGER = trt.Logger(trt.Logger.WARNING)
    return _TRT_LOGGER


def trt_major(trt: Any) -> int:
    """Major version of the imported TensorRT."""
    return int(trt.__version__.split(".")[0])


def version_major(version: str) -> int:
    """Major number of a TensorRT version string (``"10.3.0"`` -> 10)."""
    return int(str(version).split(".")[0])


def network_flag_names(major: int, has_strongly_typed: bool) -> list[str]:
    """``NetworkDefinitionCreationFlag`` names for a TensorRT major version.

    8.x needs EXPLICIT_BATCH (implicit batch was removed in 10); from 11 networks are strongly
    typed, and the STRONGLY_TYPED flag is set where the API still has it, so a float16 or Q/DQ
    graph builds in exactly the precision it declares.
    """
    flags = ["EXPLICIT_BATCH"] if major < 10 else []
    if major >= 11 and has_strongly_typed:
        flags.append("STRONGLY_TYPED")
    return flags


def builder_flag_names(major: int, precision: str, graph: str) -> list[str]:
    """``BuilderFlag`` names for ``precision`` (the profile's) and ``graph`` (what the ONNX holds).

    TensorRT >= 11 has no precision flags: none. Below 11: FP16 for an fp16 profile (the float32
    graph is then built with FP16 kernels allowed), INT8 for a Q/DQ graph (explicit quantization
    needs the flag to pick int8 kernels), FP16 too when an int8 graph runs on an fp16 profile.
    """
    if major >= 11:
        return []
    flags = []
    if precision == "fp16" or graph == "fp16":
        flags.append("FP16")
    if precision == "int8" or graph == "int8":
        flags.append("INT8")
    return flags


def builder_settings(*, onnx_sha256: str, trt_version: str, gpu: str, sm: tuple[int, int], profile: TargetProfile,
                     graph: str, has_strongly_typed: bool, input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Everything that changes the engine TensorRT builds (the cache key hashes all of it)."""
    major = version_major(trt_version)
    return {
        "onnx_sha256": onnx_sha256, "tensorrt": trt_version, "gpu": gpu, "sm": f"{sm[0]}.{sm[1]}",
        "precision": profile.precision, "graph_precision": graph,
        "network_flags": network_flag_names(major, has_strongly_typed),
        "builder_flags": builder_flag_names(major, profile.precision, graph),
        "workspace_mb": profile.trt_workspace_mb, "max_batch": profile.max_batch,
        "opt_shapes": None if input_shape is None else
        [[1, *input_shape], [1, *input_shape], [profile.max_batch, *input_shape]],
    }


def profile_shapes(shape: tuple[int, ...], max_batch: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``(min, opt, max)`` optimization-profile shapes of a network input whose one dynamic (-1)
    dimension is the batch: axis 0 for ``obs``, axis 1 for a recurrent state ``[layers, batch, hidden]``.
    The control loop's batch 1 is min and opt; the profile's ``max_batch`` is max.

    Raises:
        BundleError: The input has no dynamic dimension, or several.
    """
    dynamic = [i for i, d in enumerate(shape) if d == -1]
    if len(dynamic) != 1:
        raise BundleError(f"TensorRT network input of shape {list(shape)} needs exactly one dynamic (batch) "
                          "dimension; re-export the policy (edgerl export makes the batch dynamic), or, for an "
                          "imported graph with a fixed batch, run it with ort-cpu or ort-cuda")

    def at(n: int) -> tuple[int, ...]:
        return tuple(n if i == dynamic[0] else int(d) for i, d in enumerate(shape))

    return at(1), at(1), at(max_batch)


def engine_key(settings: dict[str, Any]) -> str:
    """Short sha256 of the builder settings (canonical JSON)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def engine_path(cache_dir: str | os.PathLike, settings: dict[str, Any]) -> Path:
    """Cache file of an engine: readable parts plus :func:`engine_key` of every builder setting."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", settings["gpu"]).strip("-").lower() or "gpu"
    sm = settings["sm"].replace(".", "")
    return Path(cache_dir) / (
        f"policy-{settings['onnx_sha256'][:16]}-trt{settings['tensorrt']}-{slug}-sm{sm}-{settings['precision']}"
        f"-{settings['graph_precision']}-b{settings['max_batch']}-{engine_key(settings)}.engine"
    )


def cached_engine_ok(path: str | os.PathLike, onnx_sha256: str) -> bool:
    """Whether ``path`` is a regular file recorded (``.json``) as built from this ONNX, with its sha256."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    try:
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(meta, dict) and meta.get("onnx_sha256") == onnx_sha256
            and meta.get("engine_sha256") == sha256_file(path))


def _expect_versions(trt: Any, profile: TargetProfile, gpu: str, sm: tuple[int, int]) -> None:
    if profile.trt_version and not (trt.__version__ + ".").startswith(profile.trt_version + "."):
        log.warning("profile %s expects TensorRT %s but %s is installed; the engine is built for the installed "
                    "version (update the profile or the device's JetPack/TensorRT)",
                    profile.name, profile.trt_version, trt.__version__)
    if profile.gpu_sm and profile.gpu_sm != f"{sm[0]}.{sm[1]}":
        log.warning("profile %s expects GPU SM %s but this %s is SM %d.%d", profile.name, profile.gpu_sm, gpu, *sm)


def build_engine(onnx_path: str | os.PathLike, profile: TargetProfile, cache_dir: str | os.PathLike,
                 force: bool = False) -> Path:
    """Build (or reuse) the serialized engine for ``onnx_path`` on this GPU.

    Args:
        onnx_path: The bundle's ``policy.onnx``.
        profile: Supplies precision, workspace limit and max batch.
        cache_dir: Folder of cached engines (``bundle/cache``).
        force: Rebuild even if a cached engine exists.

    Returns:
        Path of the cached ``.engine`` file (plus a ``.json`` describing how it was built).
    """
    trt, cudart = import_tensorrt(), import_cudart()
    gpu, major, minor = gpu_info(cudart)
    onnx_sha = sha256_file(onnx_path)
    graph = graph_precision(graph_content(onnx_path))
    strongly_typed = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    settings = builder_settings(onnx_sha256=onnx_sha, trt_version=trt.__version__, gpu=gpu, sm=(major, minor),
                                profile=profile, graph=graph, has_strongly_typed=strongly_typed)
    path = engine_path(cache_dir, settings)
    if path.is_file() and not force:
        if cached_engine_ok(path, onnx_sha):
            log.info("using cached TensorRT engine %s", path)
            return path
        log.warning("cached TensorRT engine %s does not match its .json record (sha256); rebuilding it", path)
    _expect_versions(trt, profile, gpu, (major, minor))
    log.info("building TensorRT %s engine for %s (%s, SM %d.%d); this can take minutes on a Jetson",
             trt.__version__, onnx_path, gpu, major, minor)
    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    for name in settings["network_flags"]:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BundleError(f"TensorRT {trt.__version__} cannot parse {onnx_path}: {errors}; "
                          "re-export with an opset this TensorRT supports, or use backend ort-cuda/ort-cpu")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, profile.trt_workspace_mb << 20)
    opt = builder.create_optimization_profile()
    for i in range(network.num_inputs):  # obs, and a recurrent graph's state (batch on axis 1)
        inp = network.get_input(i)
        opt.set_shape(inp.name, *profile_shapes(tuple(inp.shape), profile.max_batch))
    config.add_optimization_profile(opt)
    for name in settings["builder_flags"]:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if trt_major(trt) >= 11 and profile.precision != graph:
        log.warning("profile %s asks for %s but %s computes in %s; TensorRT %s is strongly typed and builds it in "
                    "%s. Deploy with --precision %s to export that graph into the bundle.", profile.name,
                    profile.precision, onnx_path, graph, trt.__version__, graph, profile.precision)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendUnavailableError(f"TensorRT {trt.__version__} failed to build an engine for {onnx_path} "
                                      "(see the TensorRT log above); use backend ort-cuda or ort-cpu meanwhile")

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(plan)

    atomic_write(path, _write)
    meta = {**settings, "key": engine_key(settings), "engine_sha256": sha256_file(path), "profile": profile.name,
            "built": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    log.info("cached TensorRT engine %s", path)
    return path


@register_backend("trt")
class TensorRTBackend(Backend):
    """TensorRT engine run on one CUDA stream; inputs/outputs copied through fixed device buffers."""

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            trt, cudart = import_tensorrt(), import_cudart()
        except BackendUnavailableError as e:
            return False, str(e)
        err, count = cudart.cudaGetDeviceCount()
        if err != cudart.cudaError_t.cudaSuccess or count == 0:
            return False, f"no CUDA GPU visible to TensorRT {trt.__version__} ({err}); check the driver and CUDA_VISIBLE_DEVICES"
        return True, f"TensorRT {trt.__version__}"

    def __init__(self, onnx_path: str | os.PathLike, profile: TargetProfile, cache_dir: str | os.PathLike) -> None:
        self.require()
        trt, cudart = import_tensorrt(), import_cudart()
        self._cudart = cudart
        self._runtime = trt.Runtime(trt_logger(trt))
        path = build_engine(onnx_path, profile, cache_dir)
        engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:  # truncated or foreign cache file: rebuild once
            log.warning("cached engine %s could not be deserialized; rebuilding it", path)
            engine = self._runtime.deserialize_cuda_engine(build_engine(onnx_path, profile, cache_dir, force=True).read_bytes())
            if engine is None:
                raise BackendUnavailableError(f"TensorRT cannot deserialize the engine it just built ({path})")
        self._engine, self.engine_path = engine, path
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        ins = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if n not in ins]
        self.input_name, self.output_name, self.state_inputs, self.state_outputs = recurrent_io(
            ins, outs, os.fspath(onnx_path))
        self.input_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.input_name)))
        self.output_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.output_name)))
        self.input_shape = tuple(engine.get_tensor_shape(self.input_name))[1:]
        self.max_batch = int(engine.get_tensor_profile_shape(self.input_name, 0)[2][0])
        if self.state_inputs:  # [layers, batch, hidden], float32, batch on axis 1
            shapes = {tuple(engine.get_tensor_shape(n)) for n in (*self.state_inputs, *self.state_outputs)}
            dtypes = {np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in (*self.state_inputs, *self.state_outputs)}
            shape = next(iter(shapes))
            if len(shapes) != 1 or dtypes != {np.dtype(np.float32)} or len(shape) != 3 or shape[1] != -1:
                raise BundleError(f"{onnx_path}: state tensors {sorted(shapes)} {sorted(map(str, dtypes))} are not all "
                                  "float32 [layers, batch, hidden]; re-export the policy")
            self.state_shape = (int(shape[0]), 1, int(shape[2]))
        # What runs: the graph's own precision (strongly typed) or what the builder flags allowed.
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        flags = meta.get("builder_flags", [])
        self.precision = "int8" if "INT8" in flags or meta.get("graph_precision") == "int8" else \
            "fp16" if "FP16" in flags or meta.get("graph_precision") == "fp16" else "fp32"
        self._context = engine.create_execution_context()
        self._set_batch(self.max_batch)
        out_max = tuple(self._context.get_tensor_shape(self.output_name))
        self.output_shape = out_max[1:]
        # Pageable host buffers: simple and correct (the stream is synchronised after each copy back).
        self._host_in = np.zeros((self.max_batch, *self.input_shape), self.input_dtype)
        self._host_out = np.zeros(out_max, self.output_dtype)
        self.single_input = self._host_in[:1]
        self._in_bytes = self._host_in[:1].nbytes
        self._out_bytes = self._host_out[:1].nbytes
        self._h_in, self._h_out = self._host_in.ctypes.data, self._host_out.ctypes.data
        self._d_in = int(_cuda(cudart, cudart.cudaMalloc(self._host_in.nbytes), "cudaMalloc"))
        self._d_out = int(_cuda(cudart, cudart.cudaMalloc(self._host_out.nbytes), "cudaMalloc"))
        # A recurrent graph's state: one device buffer per state tensor, sized for max_batch; the
        # host side is single_state / single_state_out at batch 1 (contiguous [layers, n, hidden]).
        self.single_state = tuple(self.zero_state(1))
        self.single_state_out = tuple(self.zero_state(1))
        state_max = self.zero_state(self.max_batch)[0].nbytes if self.state_inputs else 0
        self._d_state_in = [int(_cuda(cudart, cudart.cudaMalloc(state_max), "cudaMalloc")) for _ in self.state_inputs]
        self._d_state_out = [int(_cuda(cudart, cudart.cudaMalloc(state_max), "cudaMalloc")) for _ in self.state_outputs]
        self._stream = _cuda(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._context.set_tensor_address(self.input_name, self._d_in)
        self._context.set_tensor_address(self.output_name, self._d_out)
        for name, ptr in (*zip(self.state_inputs, self._d_state_in, strict=True),
                          *zip(self.state_outputs, self._d_state_out, strict=True)):
            self._context.set_tensor_address(name, ptr)
        self._gpu = gpu_info(cudart)

    def _set_batch(self, n: int) -> None:
        if not self._context.set_input_shape(self.input_name, (n, *self.input_shape)):
            raise RuntimeError(f"TensorRT rejected input shape {(n, *self.input_shape)}")
        for name in self.state_inputs:
            layers, _, hidden = self.state_shape
            if not self._context.set_input_shape(name, (layers, n, hidden)):
                raise RuntimeError(f"TensorRT rejected state shape {(layers, n, hidden)} of {name!r}")
        self._batch = n

    def _execute(self, n: int, state_in: tuple[np.ndarray, ...] | list[np.ndarray] = (),
                 state_out: tuple[np.ndarray, ...] | list[np.ndarray] = ()) -> np.ndarray:
        """Run batch ``n``; a recurrent graph reads ``state_in`` and writes ``state_out`` (each a
        contiguous float32 ``[layers, n, hidden]`` host array)."""
        cudart, stream = self._cudart, self._stream
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        if n != self._batch:
            self._set_batch(n)
        _cuda(cudart, cudart.cudaMemcpyAsync(self._d_in, self._h_in, n * self._in_bytes, h2d, stream),
              "cudaMemcpyAsync H2D")
        for host, dev in zip(state_in, self._d_state_in, strict=True):
            _cuda(cudart, cudart.cudaMemcpyAsync(dev, host.ctypes.data, host.nbytes, h2d, stream), "cudaMemcpyAsync H2D")
        if not self._context.execute_async_v3(int(stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        _cuda(cudart, cudart.cudaMemcpyAsync(self._h_out, self._d_out, n * self._out_bytes, d2h, stream),
              "cudaMemcpyAsync D2H")
        for host, dev in zip(state_out, self._d_state_out, strict=True):
            _cuda(cudart, cudart.cudaMemcpyAsync(host.ctypes.data, dev, host.nbytes, d2h, stream), "cudaMemcpyAsync D2H")
        _cuda(cudart, cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return self._host_out[:n]

    def run(self, obs_batch: np.ndarray) -> np.ndarray:
        n = obs_batch.shape[0]
        if n > self.max_batch:
            raise ValueError(f"batch {n} exceeds the engine's max batch {self.max_batch} (profile max_batch)")
        self._host_in[:n] = obs_batch
        if self.state_inputs:  # the first step of n episodes: zero state in, next state discarded
            return self._execute(n, self.zero_state(n), self.zero_state(n)).copy()
        return self._execute(n).copy()

    def run_single(self) -> np.ndarray:
        return self._execute(1, self.single_state, self.single_state_out)

    def describe(self) -> str:
        name, major, minor = self._gpu
        return f"trt ({self.precision}, TensorRT engine {self.engine_path.name} on {name} SM {major}.{minor})"

    def close(self) -> None:
        if getattr(self, "_stream", None) is None:
            return
        cudart = self._cudart
        for ptr in (self._d_in, self._d_out, *self._d_state_in, *self._d_state_out):
            cudart.cudaFree(ptr)
        self._d_state_in, self._d_state_out = [], []
        cudart.cudaStreamDestroy(self._stream)
        self._d_in = self._d_out = 0
        self._stream = None

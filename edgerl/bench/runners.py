"""One timed call per backend, written as the robot would call it: copy the new observation into
a preallocated input, run once.

* ``torch``: the eager policy of a checkpoint under ``torch.inference_mode`` (entered per call,
  as a decorated ``act`` function would), on ``torch.set_num_threads(threads)``.
* ``ort-cpu``, ``ort-cuda``, ``trt``: the runtime's backends (:mod:`edgerl.runtime.backends`);
  batch 1 fills ``single_input`` and calls ``run_single`` (IO binding on ort-cpu), as
  :meth:`edgerl.runtime.Policy.act` does; larger batches call ``run``.
* ``bare``: a plain ``onnxruntime.InferenceSession.run`` with the runtime's session options, and
  ``act``: :meth:`Policy.act`; the two give the runtime's overhead.

A backend that cannot run raises :class:`BackendUnavailableError` with its reason; nothing is
ever replaced by something else.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgerl.bench.models import BenchModel
from edgerl.errors import BackendUnavailableError
from edgerl.runtime.backends import BACKENDS, get_backend
from edgerl.runtime.profile import TargetProfile

TORCH = "torch"
Call = Callable[[Any], Any]


def known_backends() -> list[str]:
    """``torch`` plus every registered runtime backend."""
    return [TORCH, *BACKENDS]


class Timed(contextlib.AbstractContextManager):
    """A call to time and the resources to release afterwards."""

    def __init__(self, call: Call, close: Callable[[], None] | None = None, describe: str = "") -> None:
        self.call = call
        self._close = close
        self.describe = describe

    def __exit__(self, *exc: object) -> None:
        if self._close is not None:
            self._close()


def time_interleaved(runners: Sequence[Timed], pool: Sequence[Any] | np.ndarray, **timing: Any) -> list[dict[str, float]]:
    """Time ``runners`` interleaved over the same input ``pool`` (:func:`edgerl.bench.latency.measure`
    with ``timing``: min_queries, min_seconds, rounds, warmup), release them all, and return each
    one's percentiles (``p50_us`` ...) and call count ``n``, in order."""
    from edgerl.bench.latency import Series, measure, percentiles

    series = [Series(key=i, call=t.call, pool=pool) for i, t in enumerate(runners)]
    try:
        measure(series, **timing)
    finally:
        for t in runners:
            t.__exit__(None, None, None)
    return [{**percentiles(s.latencies()), "n": s.count} for s in series]


def torch_runner(model: BenchModel, batch: int) -> Timed:
    """The eager policy of a checkpoint on ``[batch, *obs_shape]`` inputs."""
    if model.policy is None:
        raise BackendUnavailableError(f"torch runs a checkpoint's eager policy; {model.label} is an ONNX model "
                                      "folder (no torch weights): benchmark its checkpoint for torch figures")
    import torch

    policy = model.policy
    inp = torch.from_numpy(np.zeros((batch, *model.obs_space["shape"]), model.input_dtype))
    buf = inp.numpy()  # shares memory with inp

    def call(x: np.ndarray) -> Any:
        buf[...] = x
        with torch.inference_mode():
            out = policy(inp)  # a recurrent policy: (action, *state), from the zero state
            return (out[0] if isinstance(out, tuple) else out).numpy()

    return Timed(call, describe=f"torch {torch.__version__} eager, {torch.get_num_threads()} thread(s)")


def make_backend(onnx_path: Path, name: str, profile: TargetProfile, cache_dir: Path) -> Any:
    """Construct runtime backend ``name``; raises :class:`BackendUnavailableError` with its reason."""
    cls = get_backend(name)
    ok, reason = cls.available()
    if not ok:
        raise BackendUnavailableError(reason)
    return cls(onnx_path, profile, cache_dir)


def backend_runner(model: BenchModel, name: str, batch: int, profile: TargetProfile, cache_dir: Path) -> Timed:
    """A runtime backend on the model's ONNX file (``run_single`` at batch 1, ``run`` above)."""
    if name == "c" and model.no_c:
        raise BackendUnavailableError(f"no C policy: {model.no_c}")
    backend = make_backend(model.onnx_path, name, profile, cache_dir)
    if batch == 1:
        single, run_single = backend.single_input, backend.run_single

        def call(x: np.ndarray) -> Any:
            single[...] = x
            return run_single()
    else:
        buf, run = np.zeros((batch, *backend.input_shape), backend.input_dtype), backend.run

        def call(x: np.ndarray) -> Any:
            buf[...] = x
            return run(buf)

    return Timed(call, backend.close, backend.describe())


def bare_ort_runner(onnx_path: Path, threads: int, input_shape: tuple[int, ...], input_dtype: np.dtype) -> Timed:
    """``InferenceSession.run`` with the runtime's CPU options, on one observation per call."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise BackendUnavailableError(f"onnxruntime is not installed ({e}); pip install onnxruntime") from None
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(os.fspath(onnx_path), so, providers=["CPUExecutionProvider"])
    buf = np.zeros((1, *input_shape), input_dtype)
    outputs, feed, run, row = [sess.get_outputs()[0].name], {sess.get_inputs()[0].name: buf}, sess.run, buf[0]
    for state in sess.get_inputs()[1:]:  # a recurrent graph's state [layers, batch, hidden]: zeros at batch 1
        feed[state.name] = np.zeros([d if isinstance(d, int) else 1 for d in state.shape], np.float32)

    def call(x: np.ndarray) -> Any:
        row[...] = x
        return run(outputs, feed)

    return Timed(call, describe=f"onnxruntime {ort.__version__} InferenceSession.run, {threads} thread(s)")


def act_runner(model: BenchModel, profile: TargetProfile, cache_dir: Path) -> tuple[Timed, Any]:
    """:meth:`Policy.act` on ort-cpu; returns the runner and the Policy (its profile has the threads).

    A deploy bundle is loaded as a robot loads it (``Policy.load(bundle, backends=["ort-cpu"])``,
    with the bundle's own profile). Anything else is the same ``Policy`` class built directly on
    the model's ONNX file and contract with ``profile``: the act() code timed is identical, only
    the bundle's file checks are not run (there is no bundle).
    """
    from edgerl.runtime.contract import parse_contract
    from edgerl.runtime.policy import Policy

    if model.bundle_dir is not None:
        policy = Policy.load(model.bundle_dir, backends=["ort-cpu"], verify=False)  # verified on load
    else:
        backend = make_backend(model.onnx_path, "ort-cpu", profile, cache_dir)
        policy = Policy(backend, parse_contract(model.contract, source=str(model.path)), profile,
                        model.onnx_path.parent)
    return Timed(policy.act, policy.close, f"Policy.act on {policy.backend.describe()}"), policy


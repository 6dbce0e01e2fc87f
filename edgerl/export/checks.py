"""Checks an exported model must pass before it is written: onnx.checker, the I/O signature, a
single self-contained file, actions within bounds, and ONNX Runtime parity with the torch policy.

Every failure raises :class:`~edgerl.export.errors.ExportCheckError` saying what differed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from edgerl.errors import BackendUnavailableError
from edgerl.export.errors import ExportCheckError
from edgerl.export.onnx_io import EXPORT_HINT, INPUT_NAME, OUTPUT_NAME, import_onnx
from edgerl.export.wrappers import ArgmaxPolicy, DeployedPolicy, SquashedGaussianPolicy
from edgerl.runtime.contract import state_io_names

BATCH_SIZES = (1, 7, 64)
"""Batch sizes parity is checked at (1: the control loop; 7: odd; 64: a vectorised caller)."""
FP32_ATOL = 1e-5
"""Parity bar for float32 exports (observed differences are ~1e-7)."""
FP16_ATOL = 1e-2
"""Parity bar for float16-weight exports (matches the runtime profiles' ``parity_atol_fp16``)."""
MAX_SINGLE_CALLS = 64
"""Batch-1 parity runs this many observations (one call each)."""

_REPORT_HINT = ("the exported graph computes something else than the torch policy; do not deploy it. "
                "Retry with another --opset, and report the checkpoint's network type if it persists")


@dataclass
class ParityResult:
    """ONNX Runtime vs eager torch on each observation set and batch size."""

    max_abs_diff: dict[str, dict[int, float]] = field(default_factory=dict)
    """``{source: {batch_size: max |onnx - torch|}}``; for discrete policies the largest score gap
    ``scores[torch action] - scores[onnx action]`` (0 when every argmax agrees)."""
    mismatches: dict[str, int] = field(default_factory=dict)
    """Discrete only: observations whose ONNX argmax differs from torch's (allowed only at ties)."""
    n_obs: dict[str, int] = field(default_factory=dict)
    """Observations checked per source."""
    atol: float = FP32_ATOL
    """Tolerance, scaled per action dimension by ``max(1, (high - low) / 2)`` (discrete: by
    ``max(1, max |score|)``)."""

    @property
    def worst(self) -> float:
        """Largest difference over all sources and batch sizes."""
        return max((d for per in self.max_abs_diff.values() for d in per.values()), default=0.0)


def check_model(model: Any) -> None:
    """``onnx.checker.check_model(full_check=True)`` (includes strict shape inference)."""
    onnx = import_onnx()
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # ValidationError, InferenceError
        raise ExportCheckError(f"onnx.checker rejects the exported model: {str(e).strip()[:400]}; "
                               f"{_REPORT_HINT}") from None


def check_single_file(model: Any) -> None:
    """No initializer refers to external data: the .onnx file is the whole model."""
    external = [t.name for t in model.graph.initializer if t.data_location == 1]  # TensorProto.EXTERNAL
    if external:
        raise ExportCheckError(f"{len(external)} weights are stored as external data ({external[:3]}); "
                               "the export must be one self-contained .onnx file")


def _np_dtype(elem_type: int) -> np.dtype:
    return np.dtype(import_onnx().helper.tensor_dtype_to_np_dtype(elem_type))


def _dims(value_info: Any) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value_info.type.tensor_type.shape.dim]


def check_signature(model: Any, obs_shape: Sequence[int], obs_dtype: np.dtype,
                    action_shape: Sequence[int], action_dtype: np.dtype,
                    recurrent: tuple[str, int, int] | None = None) -> None:
    """One input ``obs[batch, *obs_shape]`` and one output ``action[batch, *action_shape]``,
    with a symbolic batch dimension and the expected dtypes; a ``recurrent`` policy
    (``(kind, layers, hidden)``) also takes and returns its float32 state ``[layers, batch, hidden]``."""
    graph = model.graph
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    state_in, state_out = state_io_names(recurrent[0]) if recurrent else ((), ())
    want_in, want_out = [INPUT_NAME, *state_in], [OUTPUT_NAME, *state_out]
    if [i.name for i in inputs] != want_in or [o.name for o in graph.output] != want_out:
        raise ExportCheckError(f"exported model has inputs {[i.name for i in inputs]} and outputs "
                               f"{[o.name for o in graph.output]}; expected {want_in} -> {want_out}")
    _, layers, hidden = recurrent or ("", 0, 0)
    for vi in [*inputs[1:], *graph.output[1:]]:
        dims = _dims(vi)
        if (_np_dtype(vi.type.tensor_type.elem_type) != np.float32 or len(dims) != 3 or isinstance(dims[1], int)
                or dims[0] != layers or dims[2] != hidden):
            raise ExportCheckError(f"exported state {vi.name!r} is {_np_dtype(vi.type.tensor_type.elem_type)} "
                                   f"{dims}, expected float32 [{layers}, batch, {hidden}]")
    for vi, shape, dtype in ((inputs[0], obs_shape, obs_dtype), (graph.output[0], action_shape, action_dtype)):
        got_dtype = _np_dtype(vi.type.tensor_type.elem_type)
        dims = _dims(vi)
        if got_dtype != np.dtype(dtype):
            raise ExportCheckError(f"exported {vi.name!r} is {got_dtype}, expected {np.dtype(dtype)}")
        if len(dims) != 1 + len(shape) or isinstance(dims[0], int) or list(dims[1:]) != list(shape):
            raise ExportCheckError(f"exported {vi.name!r} has dims {dims}, expected [batch, *{list(shape)}] "
                                   "with a symbolic batch dimension")


def ort_session(model_bytes: bytes) -> Any:
    """A single-threaded CPU ONNX Runtime session on a serialized model."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise BackendUnavailableError(f"onnxruntime is not installed ({e}); {EXPORT_HINT}") from None
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own exception types
        raise ExportCheckError(f"ONNX Runtime cannot load the exported model: {str(e).strip()[:400]}; "
                               f"{_REPORT_HINT}") from None


def run_batched(session: Any, obs: np.ndarray, batch: int) -> tuple[np.ndarray, int]:
    """Run ``obs`` through ``session`` in batches of ``batch``; returns (actions, rows run).

    Batch 1 runs at most :data:`MAX_SINGLE_CALLS` rows; other sizes run whole batches only (or the
    whole set as one batch when it is smaller than ``batch``).
    """
    rows = min(len(obs), MAX_SINGLE_CALLS) if batch == 1 else (len(obs) // batch) * batch or len(obs)
    step = batch if rows >= batch else rows
    try:
        outs = [session.run([OUTPUT_NAME], {INPUT_NAME: obs[i:i + step]})[0] for i in range(0, rows, step)]
    except Exception as e:  # ORT raises its own exception types
        raise ExportCheckError(f"ONNX Runtime failed at batch size {step}: {str(e).strip()[:400]}; "
                               f"{_REPORT_HINT}") from None
    return np.concatenate(outs), rows


def _continuous_gap(policy: SquashedGaussianPolicy, ref: np.ndarray, got: np.ndarray,
                    atol: float) -> tuple[float, bool]:
    scale = np.maximum(1.0, policy.half_range.numpy())
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    return float(diff.max(initial=0.0)), bool(np.all(diff <= atol * scale))


def _discrete_gap(policy: ArgmaxPolicy, scores: np.ndarray, got: np.ndarray, atol: float,
                  source: str) -> tuple[float, int, bool]:
    idx = got.astype(np.int64) - policy.start
    n = scores.shape[-1]
    if np.any((idx < 0) | (idx >= n)):
        raise ExportCheckError(f"ONNX actions on {source} observations fall outside [{policy.start}, "
                               f"{policy.start + n}); {_REPORT_HINT}")
    best = scores.max(-1)
    gap = best - np.take_along_axis(scores, idx[:, None], -1)[:, 0]
    tol = atol * np.maximum(1.0, np.abs(scores).max(-1))
    mismatches = int(np.sum(idx != scores.argmax(-1)))
    return float(gap.max(initial=0.0)), mismatches, bool(np.all(gap <= tol))


def _sources(result: ParityResult, observations: Mapping[str, np.ndarray], in_dtype: np.dtype
             ) -> Iterator[tuple[str, np.ndarray]]:
    """Each non-empty observation set cast to the graph's input dtype, registered in ``result``."""
    for source, raw in observations.items():
        if len(raw) == 0:
            continue
        obs = np.ascontiguousarray(raw, dtype=in_dtype)
        result.n_obs[source] = len(obs)
        result.max_abs_diff[source] = {}
        yield source, obs


def check_parity(policy: DeployedPolicy, session: Any, observations: Mapping[str, np.ndarray],
                 in_dtype: np.dtype, atol: float = FP32_ATOL,
                 batch_sizes: Sequence[int] = BATCH_SIZES) -> ParityResult:
    """Compare ONNX Runtime with the eager torch ``policy`` (the float32 reference).

    Args:
        policy: The float32 torch policy.
        session: ONNX Runtime session of the exported model.
        observations: ``{source: raw observations [n, *obs_shape]}`` (e.g. random, recorded).
        in_dtype: The model's input dtype (observations are cast to it, as the runtime does).
        atol: Tolerance (see :attr:`ParityResult.atol`).
        batch_sizes: Batch sizes to run.

    Raises:
        ExportCheckError: A difference exceeds the tolerance, or an action leaves its bounds.
    """
    if policy.recurrent is not None:
        return check_recurrent_parity(policy, session, observations, in_dtype, atol, batch_sizes)
    result = ParityResult(atol=atol)
    for source, obs in _sources(result, observations, in_dtype):
        with torch.no_grad():
            x = torch.as_tensor(obs)
            ref = policy.scores(x).numpy() if isinstance(policy, ArgmaxPolicy) else policy(x).numpy()
        for b in batch_sizes:
            got, rows = run_batched(session, obs, b)
            if isinstance(policy, ArgmaxPolicy):
                gap, mism, ok = _discrete_gap(policy, ref[:rows], got, atol, source)
                result.mismatches[source] = max(result.mismatches.get(source, 0), mism)
            else:
                gap, ok = _continuous_gap(policy, ref[:rows], got, atol)
                check_bounds(policy, got, source)
            result.max_abs_diff[source][b] = gap
            if not ok:
                raise ExportCheckError(
                    f"ONNX Runtime and torch disagree on {source} observations at batch size {b}: max |diff| "
                    f"{gap:.3g} > tolerance {atol:g}; {_REPORT_HINT}")
    return result


RESET_EVERY = 97
"""Recurrent parity: an episode starts (the state is zeroed) every this many steps of a stream."""


def stream_starts(n: int) -> np.ndarray:
    """The episode starts ([n] bool) of a recurrent parity stream: every :data:`RESET_EVERY` steps."""
    starts = np.zeros(n, bool)
    starts[::RESET_EVERY] = True
    return starts


def recurrent_signature(policy: DeployedPolicy) -> tuple[str, int, int] | None:
    """``(kind, layers, hidden)`` of a recurrent policy's state, None for a feed-forward one."""
    net = policy.recurrent
    return None if net is None else (net.rnn_type, *net.state_shape)


def ort_sequence(session: Any, obs: np.ndarray, starts: np.ndarray, kind: str, layers: int,
                 hidden: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run ``obs[T, B, ...]`` through a recurrent graph as B streams: the state outputs fed back as
    the next step's inputs, zeroed where ``starts[T, B]``. Returns actions ``[T, B, ...]`` and the
    states after each step (each ``[T, layers, B, hidden]``)."""
    ins, outs = state_io_names(kind)
    return run_state_stream(session, obs, starts, (INPUT_NAME, OUTPUT_NAME, ins, outs), layers, hidden)


def run_state_stream(session: Any, obs: np.ndarray, starts: np.ndarray,
                     names: tuple[str, str, Sequence[str], Sequence[str]], layers: int,
                     hidden: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`ort_sequence` on a graph with any tensor names: ``(obs, action, state inputs, state
    outputs)``, each state output fed back as the input it is paired with."""
    obs_name, act_name, ins, outs = names
    state = [np.zeros((layers, obs.shape[1], hidden), np.float32) for _ in ins]
    actions, states = [], []
    for t in range(len(obs)):
        if starts[t].any():
            state = [np.where(starts[t][None, :, None], np.float32(0.0), s) for s in state]
        got = session.run([act_name, *outs], {obs_name: obs[t], **dict(zip(ins, state, strict=True))})
        actions.append(got[0])
        state = list(got[1:])
        states.append(state)
    return np.stack(actions), [np.stack([s[i] for s in states]) for i in range(len(ins))]


def check_recurrent_parity(policy: DeployedPolicy, session: Any, observations: Mapping[str, np.ndarray],
                           in_dtype: np.dtype, atol: float = FP32_ATOL,
                           batch_sizes: Sequence[int] = BATCH_SIZES) -> ParityResult:
    """:func:`check_parity` of a recurrent policy: each observation set runs as a sequence (at batch
    b, b parallel streams), the state fed back step to step and zeroed every :data:`RESET_EVERY`
    steps as the control loop zeroes it at episode start; actions and states are compared."""
    kind, layers, hidden = recurrent_signature(policy) or ("", 0, 0)
    result = ParityResult(atol=atol)
    for source, obs in _sources(result, observations, in_dtype):
        for b in batch_sizes:
            steps = len(obs) // b
            if steps == 0:
                continue
            seq = obs[:steps * b].reshape(steps, b, *obs.shape[1:])
            starts = np.repeat(stream_starts(steps)[:, None], b, axis=1)
            discrete = isinstance(policy, ArgmaxPolicy)  # compared on its scores, as feed-forward ones are
            ref, ref_states = policy.run_sequence(torch.as_tensor(seq), torch.as_tensor(starts),
                                                  step=policy.score_step if discrete else None)
            try:
                got, got_states = ort_sequence(session, seq, starts, kind, layers, hidden)
            except Exception as e:  # ORT raises its own exception types
                raise ExportCheckError(f"ONNX Runtime failed on a {kind} sequence at batch size {b}: "
                                       f"{str(e).strip()[:400]}; {_REPORT_HINT}") from None
            if discrete:
                gap, mism, ok = _discrete_gap(policy, ref.numpy().reshape(steps * b, -1), got.reshape(steps * b),
                                              atol, source)
                result.mismatches[source] = max(result.mismatches.get(source, 0), mism)
            else:
                gap, ok = _continuous_gap(policy, ref.numpy().reshape(steps * b, -1), got.reshape(steps * b, -1), atol)
                check_bounds(policy, got.reshape(steps * b, -1), source)
            for r, g in zip(ref_states, got_states, strict=True):
                diff = np.abs(g.astype(np.float64) - r.numpy())
                ok = ok and bool(np.all(diff <= atol * np.maximum(1.0, np.abs(r.numpy()))))
                gap = max(gap, float(diff.max(initial=0.0)))
            result.max_abs_diff[source][b] = gap
            if not ok:
                raise ExportCheckError(
                    f"ONNX Runtime and torch disagree on {source} observations run as a {kind} sequence at batch "
                    f"size {b} (state fed back): max |diff| {gap:.3g} > tolerance {atol:g}; {_REPORT_HINT}")
    return result


def check_bounds(policy: SquashedGaussianPolicy, actions: np.ndarray, source: str) -> None:
    """Continuous actions lie within the env's bounds (up to float32 rounding)."""
    low = policy.low.numpy().astype(np.float64)
    high = (policy.high.numpy().astype(np.float64) if hasattr(policy, "high")  # imported: may be infinite
            else low + 2.0 * policy.half_range.numpy().astype(np.float64))
    with np.errstate(invalid="ignore"):
        slack = np.nan_to_num(1e-6 * np.maximum(1.0, np.maximum(np.abs(low), np.abs(high))), posinf=0.0)
    a = actions.astype(np.float64)
    if not np.all(np.isfinite(a)) or np.any(a < low - slack) or np.any(a > high + slack):
        raise ExportCheckError(f"ONNX actions on {source} observations leave the action bounds "
                               f"[{low.min():g}, {high.max():g}] or are not finite; {_REPORT_HINT}")

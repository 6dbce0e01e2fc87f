"""Checks of a reduced-precision (fp16, int8) graph against the float32 torch policy.

A tolerance on one tensor is not what matters for a policy, so these report per-action error
statistics in action units (max, median, p99 of ``|a_q - a_fp32|``) on the calibration and on
held-out observations, the discrete action agreement, and what the graph actually computes in
(its Q/DQ and float16 content, read from the graph itself). Thresholds come from the target
profile's ``parity`` fields for the precision; every comparison fails on NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from edgerl.export.checks import ort_sequence, recurrent_signature, run_batched, stream_starts
from edgerl.export.errors import ExportCheckError
from edgerl.export.wrappers import DeployedPolicy
from edgerl.runtime.graph import graph_precision, model_content


@dataclass(frozen=True)
class PrecisionThresholds:
    """Bars a reduced-precision graph must meet against the float32 policy."""

    max_abs: float
    """Largest |a_q - a_fp32| allowed, in action units per ``max(1, (high - low) / 2)``."""
    p99_abs: float
    """Largest 99th percentile of |a_q - a_fp32| allowed (same units)."""
    agreement: float
    """Smallest fraction of observations whose discrete action must equal the float32 one."""


DEFAULT_THRESHOLDS = {
    "fp32": PrecisionThresholds(max_abs=1e-5, p99_abs=1e-5, agreement=1.0),
    "fp16": PrecisionThresholds(max_abs=1e-2, p99_abs=5e-3, agreement=0.98),
    "int8": PrecisionThresholds(max_abs=0.15, p99_abs=0.05, agreement=0.99),
}
"""Defaults when no profile is given (the profiles' ``parity_*`` defaults are the same)."""


def thresholds_from_profile(profile: Any, precision: str) -> PrecisionThresholds:
    """The thresholds a target profile sets for ``precision`` (see ``TargetProfile.parity_for``)."""
    return PrecisionThresholds(**profile.parity_for(precision))


@dataclass
class ErrorStats:
    """|a_q - a_fp32| over one observation set (continuous), or the agreement (discrete)."""

    n: int
    max: float | None = None
    median: float | None = None
    p99: float | None = None
    per_action_max: list[float] | None = None
    """Max error of each action dimension, in action units (unscaled)."""
    agreement: float | None = None
    """Discrete: fraction of observations with the same action as float32."""


@dataclass
class PrecisionReport:
    """What a reduced-precision graph computes in and how far its actions are from float32."""

    precision: str
    """Precision asked for."""
    graph_precision: str
    """Precision read from the graph's own content (Q/DQ nodes, float16 tensors)."""
    graph: dict[str, Any]
    """``{"ops": {op_type: count}, "initializer_dtypes": {dtype: count}}``."""
    thresholds: PrecisionThresholds
    stats: dict[str, ErrorStats] = field(default_factory=dict)
    """``{"calibration": ..., "held_out": ...}`` (or other sources)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        out = [f"graph      computes in {self.graph_precision} "
               f"({self.graph['ops'].get('QuantizeLinear', 0)} QuantizeLinear, "
               f"{self.graph['initializer_dtypes'].get('float16', 0)} float16 weights)"]
        for src, s in self.stats.items():
            if s.agreement is not None:
                out.append(f"{self.precision:<10} {src} ({s.n} obs): action agreement {s.agreement:.2%} "
                           f"(>= {self.thresholds.agreement:.0%})")
            else:
                out.append(f"{self.precision:<10} {src} ({s.n} obs): |a - a_fp32| max {s.max:.3g}, median "
                           f"{s.median:.3g}, p99 {s.p99:.3g} (bars {self.thresholds.max_abs:g} / "
                           f"{self.thresholds.p99_abs:g})")
        return out


def error_stats(ref: np.ndarray, got: np.ndarray, scale: np.ndarray | None) -> ErrorStats:
    """Statistics of |got - ref| (continuous; each dimension divided by ``scale``) or agreement."""
    if scale is None:
        return ErrorStats(n=len(ref), agreement=float(np.mean(got == ref)) if len(ref) else float("nan"))
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    diff = np.where(np.isfinite(diff), diff, np.inf)  # a NaN action is an infinite error
    scaled = (diff / scale).reshape(len(diff), -1)
    with np.errstate(invalid="ignore"):  # percentiles of inf entries: inf or NaN, both fail the bars
        median, p99 = float(np.median(scaled)), float(np.percentile(scaled, 99))
    return ErrorStats(n=len(ref), max=float(scaled.max(initial=0.0)), median=median, p99=p99,
                      per_action_max=[float(v) for v in diff.reshape(len(diff), -1).max(0)])


def run_all(session: Any, obs: np.ndarray, chunk: int = 64) -> np.ndarray:
    """Every row of ``obs`` through ``session`` in chunks of at most ``chunk`` (the last may be shorter)."""
    parts = [run_batched(session, obs[i:i + chunk], chunk)[0] for i in range(0, len(obs), chunk)]
    return np.concatenate(parts) if parts else np.empty((0,))


def _scale(policy: DeployedPolicy) -> np.ndarray | None:
    """Per-action error unit ``max(1, half range)`` of a continuous policy (SAC's or an imported
    action chain's), None for a discrete one (its actions are compared by agreement)."""
    if policy.discrete:
        return None
    half_range: torch.Tensor = policy.half_range  # type: ignore[assignment]
    return np.maximum(1.0, half_range.numpy().astype(np.float64)).reshape(-1)


def failures(stats: Mapping[str, ErrorStats], t: PrecisionThresholds) -> list[str]:
    """Every bar a set of statistics misses (NaN misses every bar)."""
    out = []
    for src, s in stats.items():
        if s.agreement is not None:
            if not (s.agreement >= t.agreement):
                out.append(f"{src}: discrete action agreement {s.agreement:.2%} < {t.agreement:.2%}")
            continue
        if not (s.max is not None and s.max <= t.max_abs):
            out.append(f"{src}: max |a - a_fp32| {s.max:.3g} > {t.max_abs:g}")
        if not (s.p99 is not None and s.p99 <= t.p99_abs):
            out.append(f"{src}: p99 |a - a_fp32| {s.p99:.3g} > {t.p99_abs:g}")
    return out


def _reference_and_graph(policy: DeployedPolicy, session: Any, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The float32 policy's actions and the graph's for ``obs``; a recurrent policy runs them as
    one stream at batch 1, the state fed back and zeroed at the parity stream's episode starts."""
    from edgerl.export.observations import torch_actions

    signature = recurrent_signature(policy)
    if signature is None:
        return torch_actions(policy, obs, obs.dtype), run_all(session, obs)
    starts = stream_starts(len(obs))
    return (torch_actions(policy, obs, obs.dtype, starts),
            ort_sequence(session, obs[:, None], starts[:, None], *signature)[0][:, 0])


def check_precision(policy: DeployedPolicy, model: Any, session: Any, observations: Mapping[str, np.ndarray],
                    in_dtype: np.dtype, precision: str, thresholds: PrecisionThresholds) -> PrecisionReport:
    """Compare a reduced-precision graph with the float32 torch ``policy`` and enforce ``thresholds``.

    Args:
        policy: The float32 torch policy (the reference).
        model: The reduced-precision ``onnx.ModelProto`` (its content is reported).
        session: ONNX Runtime session of ``model``.
        observations: ``{source: raw observations}``, e.g. ``calibration`` and ``held_out``.
        in_dtype: The graph's input dtype.
        precision: The precision asked for (``fp16``/``int8``); the graph must compute in it.
        thresholds: The bars (:func:`thresholds_from_profile`).

    Raises:
        ExportCheckError: The graph does not compute in ``precision``, or a bar is missed.
    """
    content = model_content(model.SerializeToString())
    report = PrecisionReport(precision=precision, graph_precision=graph_precision(content), graph=content,
                             thresholds=thresholds)
    if report.graph_precision != precision:
        raise ExportCheckError(f"asked for {precision} but the graph computes in {report.graph_precision} "
                               f"(ops {sorted(content['ops'])}); do not deploy it")
    for source, raw in observations.items():
        if len(raw) == 0:
            continue
        obs = np.ascontiguousarray(raw, dtype=in_dtype)
        report.stats[source] = error_stats(*_reference_and_graph(policy, session, obs), _scale(policy))
    missed = failures(report.stats, thresholds)
    if missed:
        raise ExportCheckError(f"the {precision} graph is too far from the float32 policy: {'; '.join(missed)}; "
                               "calibrate on more representative observations (--observations), use another "
                               "precision, or loosen the profile's parity bars only if the return is unaffected "
                               "(edgerl run / edgerl bench --return)")
    return report


"""``export_policy``: checkpoint -> checked ``policy.onnx`` + ``contract.json``, and its report."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import edgerl
from edgerl.checkpoint import checkpoint_file, library_versions, load_checkpoint
from edgerl.errors import ConfigError
from edgerl.export.checks import (
    FP16_ATOL,
    FP32_ATOL,
    ParityResult,
    check_bounds,
    check_model,
    check_parity,
    check_signature,
    check_single_file,
    ort_session,
    recurrent_signature,
)
from edgerl.export.contract import build_contract
from edgerl.export.observations import (
    input_dtype,
    obs_space,
    policy_obs_stats,
    random_observations,
    recorded_observations,
)
from edgerl.export.onnx_io import export_onnx, import_onnx, read_opset, set_metadata
from edgerl.export.policy import baked_in_steps, policy_from_checkpoint
from edgerl.export.precision_checks import (
    DEFAULT_THRESHOLDS,
    PrecisionReport,
    PrecisionThresholds,
    check_precision,
    run_all,
)
from edgerl.export.quantize import (
    CALIBRATION_OBS,
    HELD_OUT_OBS,
    check_precision_name,
    latest_replay,
    load_observation_file,
    quantize_int8,
    split_observations,
)
from edgerl.export.wrappers import DeployedPolicy
from edgerl.outputs import check_output_path
from edgerl.runtime.fileio import atomic_write_bytes, atomic_write_text, sha256_file

RECORDED_STEPS = 256
"""Default environment steps recorded for the parity check."""
RANDOM_OBS = 256
"""Random observations drawn for the parity check."""


@dataclass
class ExportReport:
    """What ``export_policy`` wrote and what it checked (``to_dict`` is the ``--json`` output)."""

    onnx_path: str
    contract_path: str
    size_bytes: int
    opset: int
    """Opset written in the file (read back; the exporter may raise a requested low opset)."""
    opset_requested: int | None
    exporter: str
    """``dynamo`` or ``legacy`` (fallback)."""
    precision: str
    algo: str
    env_id: str
    checkpoint: str
    sha256: str
    """sha256 of the source checkpoint file."""
    steps: int | None
    """Environment steps the exported policy was trained for."""
    obs_shape: list[int]
    obs_dtype: str
    """dtype of the graph's input (float32, or uint8 for images)."""
    action_shape: list[int]
    action_dtype: str
    baked_in: list[str]
    parity: ParityResult
    checks: list[str] = field(default_factory=list)
    """Checks passed, in order."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of ``export`` (torch -> ONNX), ``rollout``, ``checks`` and ``total``."""
    notes: list[str] = field(default_factory=list)
    precision_report: PrecisionReport | None = None
    """fp16/int8: error statistics against float32 and the graph's actual precision."""
    calibration: str | None = None
    """int8: where the calibration observations came from."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; parity keys are strings (``{"random": {"1": 2.4e-07, ...}}``)."""
        d = asdict(self)
        d["parity"] = {
            "max_abs_diff": {s: {str(b): v for b, v in per.items()} for s, per in self.parity.max_abs_diff.items()},
            "worst": self.parity.worst, "atol": self.parity.atol, "n_obs": self.parity.n_obs,
            "mismatches": self.parity.mismatches,
        }
        return d

    def summary(self) -> str:
        """A short human-readable report."""
        lines = [
            f"exported {self.algo} policy for {self.env_id} ({self.steps if self.steps is not None else '?'} steps)",
            f"  file       {self.onnx_path} ({self.size_bytes / 1024:.1f} KiB, single file, {self.precision})",
            f"  contract   {self.contract_path}",
            f"  opset      {self.opset}" + (f" (asked for {self.opset_requested})"
                                            if self.opset_requested not in (None, self.opset) else "")
            + f", {self.exporter} exporter",
            f"  io         obs {self.obs_dtype}{self.obs_shape} -> action {self.action_dtype}{self.action_shape}",
            f"  baked in   {', '.join(self.baked_in)}",
        ]
        for source, per in self.parity.max_abs_diff.items():
            diffs = ", ".join(f"b{b}: {v:.2e}" for b, v in per.items())
            extra = f", {self.parity.mismatches[source]} argmax ties" if self.parity.mismatches.get(source) else ""
            lines.append(f"  parity     {source} ({self.parity.n_obs[source]} obs) max |diff| {diffs}{extra}")
        if self.calibration:
            lines.append(f"  calibrated {self.calibration}")
        if self.precision_report is not None:
            lines += [f"  {line}" for line in self.precision_report.lines()]
        lines.append(f"  checks     passed: {', '.join(self.checks)} (atol {self.parity.atol:g})")
        lines.append("  time       " + ", ".join(f"{k} {v:.2f}s" for k, v in self.seconds.items()))
        lines += [f"  note       {n}" for n in self.notes]
        return "\n".join(lines)


def default_output(ckpt_path: str | os.PathLike, fp16: bool = False, precision: str = "fp32") -> Path:
    """``policy.onnx`` beside the checkpoint (``policy_fp16.onnx``, ``policy_int8.onnx``)."""
    precision = "fp16" if fp16 else precision
    return checkpoint_file(ckpt_path).parent / ("policy.onnx" if precision == "fp32" else f"policy_{precision}.onnx")


def calibration_pool(ckpt_file: Path, ckpt: dict[str, Any], policy: DeployedPolicy,
                     observations: np.ndarray | str | os.PathLike | None, seed: int) -> tuple[np.ndarray, str]:
    """Observations to calibrate INT8 on and hold out: a given array or ``.npz`` file, else the
    newest replay buffer beside the checkpoint, else a rollout of the policy in its env."""
    shape = [int(d) for d in obs_space(ckpt)["shape"]]
    if isinstance(observations, np.ndarray):
        if list(observations.shape[1:]) != shape or len(observations) == 0:
            raise ConfigError(f"observations have shape {list(observations.shape)}, expected [n>0, *{shape}]")
        return observations, f"{len(observations)} given observations"
    if observations is not None:
        return load_observation_file(observations, shape), f"{observations}"
    replay = latest_replay(ckpt_file)
    if replay is not None:
        obs = load_observation_file(replay, shape)
        take = np.random.default_rng(seed).choice(len(obs), min(len(obs), 4 * (CALIBRATION_OBS + HELD_OUT_OBS)),
                                                  replace=False)
        return obs[np.sort(take)], f"replay buffer {replay.name} ({len(obs)} observations)"
    n = CALIBRATION_OBS + HELD_OUT_OBS
    return recorded_observations(policy, ckpt, n, seed), f"{n} steps rolled with the policy in {ckpt['env']['id']}"


def _check_opset(opset: int | None) -> None:
    if opset is None:
        return
    newest = int(import_onnx().defs.onnx_opset_version())
    if not 7 <= opset <= newest:
        raise ConfigError(f"--opset {opset} is out of range: the installed onnx writes opsets 7..{newest} "
                          "(torch's exporter writes 18 or newer; omit --opset to let it choose)")


def check_observations(policy: DeployedPolicy, ckpt: dict[str, Any], recorded_obs: np.ndarray | None,
                       recorded_steps: int, seed: int, notes: list[str]) -> dict[str, np.ndarray]:
    """``{"random": ..., "recorded": ...}`` observations the parity check runs on."""
    space = obs_space(ckpt)
    rng = np.random.default_rng(seed)
    observations = {"random": random_observations(space, RANDOM_OBS, rng, *policy_obs_stats(policy))}
    if recorded_obs is not None:
        rec = np.asarray(recorded_obs)
        if list(rec.shape[1:]) != list(space["shape"]):
            raise ConfigError(f"recorded observations have shape {list(rec.shape)}; "
                              f"expected [n, *{list(space['shape'])}]")
        observations["recorded"] = rec
    elif recorded_steps > 0:
        observations["recorded"] = recorded_observations(policy, ckpt, recorded_steps, seed)
    else:
        notes.append("no recorded observations (--recorded-steps 0): parity checked on random observations only")
    return observations


def run_checks(model: Any, policy: DeployedPolicy, observations: dict[str, np.ndarray], obs_shape: list[int],
               in_dtype: np.dtype, action_shape: list[int], action_dtype: np.dtype,
               atol: float) -> tuple[bytes, ParityResult, list[str]]:
    """Run every model check; returns the serialized model, the parity numbers and the checks passed."""
    check_model(model)
    check_single_file(model)
    check_signature(model, obs_shape, in_dtype, action_shape, action_dtype, recurrent_signature(policy))
    model_bytes = model.SerializeToString()
    parity = check_parity(policy, ort_session(model_bytes), observations, in_dtype, atol=atol)
    checks = ["onnx.checker", "single-file", "signature", *(f"parity-{s}" for s in parity.n_obs)]
    return model_bytes, parity, checks if policy.discrete else [*checks, "action-bounds"]


def run_reduced_checks(model: Any, policy: DeployedPolicy, observations: dict[str, np.ndarray],
                       obs_shape: list[int], in_dtype: np.dtype, action_shape: list[int], action_dtype: np.dtype,
                       precision: str, thresholds: PrecisionThresholds) -> tuple[bytes, PrecisionReport, list[str]]:
    """The checks of a quantized graph: onnx.checker, single file, signature, action bounds, and
    the error statistics against float32 (:func:`check_precision`)."""
    check_model(model)
    check_single_file(model)
    check_signature(model, obs_shape, in_dtype, action_shape, action_dtype)
    model_bytes = model.SerializeToString()
    session = ort_session(model_bytes)
    report = check_precision(policy, model, session, observations, in_dtype, precision, thresholds)
    checks = [f"{precision}-onnx.checker", f"{precision}-signature", f"{precision}-error-stats"]
    if not policy.discrete:
        for source, obs in observations.items():
            check_bounds(policy, run_all(session, np.ascontiguousarray(obs, dtype=in_dtype)), source)
        checks.append(f"{precision}-action-bounds")
    return model_bytes, report, checks


def export_policy(ckpt_path: str | os.PathLike, out_path: str | os.PathLike | None = None,
                  opset: int | None = None, fp16: bool = False, recorded_obs: np.ndarray | None = None,
                  *, recorded_steps: int = RECORDED_STEPS, contract_path: str | os.PathLike | None = None,
                  seed: int = 0, exporter: str = "auto", precision: str | None = None,
                  calibration_obs: np.ndarray | str | os.PathLike | None = None,
                  thresholds: PrecisionThresholds | None = None, activation_type: str = "quint8") -> ExportReport:
    """Export a train or policy checkpoint to one checked ONNX file plus ``contract.json``.

    The model and contract are written (atomically) only after every check passed.

    Args:
        ckpt_path: Checkpoint file (or a run folder holding ``ckpt.pt``).
        out_path: ONNX file to write; default :func:`default_output`.
        opset: Requested ai.onnx opset (None: the exporter's choice). The written one is reported.
        fp16: Export the float16-weight variant (float32 input/output, Casts at the network's ends).
        recorded_obs: Observations to check parity on, e.g. from a real robot log ``[n, *obs_shape]``;
            None rolls the checkpoint's environment for ``recorded_steps`` steps instead.
        recorded_steps: Steps to roll when ``recorded_obs`` is None (0 skips the rollout).
        contract_path: Where to write the contract; default ``contract.json`` beside the ONNX file.
        seed: Seeds the rollout and the random observations.
        exporter: ``auto`` (dynamo, then legacy on failure), ``dynamo`` or ``legacy``.
        precision: ``fp32``, ``fp16`` or ``int8`` (default: fp16 if ``fp16``, else fp32). int8 writes
            a QDQ graph (:func:`edgerl.export.quantize.quantize_int8`) calibrated on ``calibration_obs``.
        calibration_obs: int8 calibration observations (array or ``.npz`` with ``obs``); default the
            newest ``replay-<step>.npz`` beside the checkpoint, else a rollout. A fifth is held out.
        thresholds: fp16/int8 bars against float32 (default
            :data:`~edgerl.export.precision_checks.DEFAULT_THRESHOLDS`; a profile's via ``parity_for``).
        activation_type: int8 activations, ``quint8`` or ``qint8``.

    Raises:
        CheckpointError: The checkpoint is unreadable or not exportable.
        ConfigError: Bad option, or the environment cannot be rolled for recorded observations.
        ExportError: Conversion failed; ExportCheckError when a check failed (nothing written).
    """
    t_start = time.perf_counter()
    if fp16 and precision not in (None, "fp16"):
        raise ConfigError(f"--fp16 contradicts --precision {precision}; pass only --precision")
    precision = check_precision_name(precision or ("fp16" if fp16 else "fp32"))
    fp16 = precision == "fp16"
    _check_opset(opset)
    if recorded_steps < 0:
        raise ConfigError(f"--recorded-steps must be >= 0, got {recorded_steps}")
    ckpt_file = checkpoint_file(ckpt_path)
    ckpt = load_checkpoint(ckpt_file)
    out = Path(out_path) if out_path is not None else default_output(ckpt_file, precision=precision)
    contract_out = Path(contract_path) if contract_path is not None else out.parent / "contract.json"
    if len({ckpt_file.resolve(), out.resolve(), contract_out.resolve()}) < 3:
        raise ConfigError(f"output {out} and contract {contract_out} must differ from each other and from the "
                          f"checkpoint {ckpt_file}; choose another -o/--contract")
    check_output_path(out, "-o", inputs=(ckpt_file,))
    check_output_path(contract_out, "--contract", inputs=(ckpt_file,))
    sha = sha256_file(ckpt_file)
    steps = baked_in_steps(ckpt)
    space = obs_space(ckpt)
    in_dtype = input_dtype(space)
    obs_shape = [int(d) for d in space["shape"]]

    policy = policy_from_checkpoint(ckpt)
    if policy.recurrent is not None and precision == "int8":
        raise ConfigError(f"--precision int8 covers feed-forward policies; this one carries a "
                          f"{policy.recurrent.rnn_type} state: export it at --precision fp16 or fp32")
    exported = policy.to_fp16() if fp16 else policy
    notes: list[str] = []
    # Rolled before the slow conversion, so a missing environment fails early.
    t0 = time.perf_counter()
    observations = check_observations(policy, ckpt, recorded_obs, recorded_steps, seed, notes)
    t_rollout = time.perf_counter() - t0

    t0 = time.perf_counter()
    example = torch.as_tensor(random_observations(space, 2, np.random.default_rng(seed)).astype(in_dtype))
    model, exporter_used, export_notes = export_onnx(exported, example, opset, exporter)
    notes += export_notes
    t_export = time.perf_counter() - t0
    written_opset = read_opset(model)
    if opset is not None and written_opset != opset:
        notes.append(f"asked for opset {opset}; the {exporter_used} exporter wrote opset {written_opset}")
    action_shape = [] if policy.discrete else [int(d) for d in ckpt["env"]["action_space"]["shape"]]
    action_dtype = np.dtype(np.int64 if policy.discrete else np.float32)
    set_metadata(model, {
        "edgerl.version": edgerl.__version__, "edgerl.algo": ckpt["algo"], "edgerl.env_id": ckpt["env"]["id"],
        "edgerl.source_checkpoint": ckpt_file.name, "edgerl.source_sha256": sha,
        "edgerl.steps": "" if steps is None else str(steps), "edgerl.obs_shape": json.dumps(obs_shape),
        "edgerl.obs_dtype": str(in_dtype), "edgerl.action_shape": json.dumps(action_shape),
        "edgerl.action_dtype": str(action_dtype), "edgerl.baked_in": json.dumps(policy.baked_in),
        "edgerl.precision": precision, "edgerl.exporter": exporter_used,
    })
    model.doc_string = (f"edgerl {ckpt['algo']} policy for {ckpt['env']['id']}: "
                        f"obs -> {' -> '.join(policy.baked_in)} -> action")

    t0 = time.perf_counter()
    model_bytes, parity, checks = run_checks(model, policy, observations, obs_shape, in_dtype, action_shape,
                                             action_dtype, atol=FP16_ATOL if fp16 else FP32_ATOL)
    bars = thresholds or DEFAULT_THRESHOLDS[precision]
    prec_report, calibration = None, None
    if precision == "int8":
        pool, calibration = calibration_pool(ckpt_file, ckpt, policy, calibration_obs, seed)
        calib, held = split_observations(np.ascontiguousarray(pool, dtype=in_dtype), seed)
        model, _ = quantize_int8(model, calib, activation_type=activation_type)
        model_bytes, prec_report, int8_checks = run_reduced_checks(
            model, policy, {"calibration": calib, "held_out": held}, obs_shape, in_dtype, action_shape,
            action_dtype, precision, bars)
        checks += int8_checks
    elif precision == "fp16":
        prec_report = check_precision(policy, model, ort_session(model_bytes), observations, in_dtype, precision, bars)
        checks.append("fp16-error-stats")
    versions = library_versions()
    contract = build_contract(ckpt, exported, checkpoint=os.fspath(ckpt_path), sha256=sha, steps=steps,
                              opset=written_opset, versions=versions, precision=precision)
    checks.append("contract")
    t_checks = time.perf_counter() - t0

    atomic_write_bytes(out, model_bytes)
    atomic_write_text(contract_out, json.dumps(contract, indent=2) + "\n")
    return ExportReport(
        onnx_path=str(out), contract_path=str(contract_out), size_bytes=len(model_bytes), opset=written_opset,
        opset_requested=opset, exporter=exporter_used, precision=precision, algo=ckpt["algo"],
        env_id=ckpt["env"]["id"], checkpoint=os.fspath(ckpt_path), sha256=sha, steps=steps,
        obs_shape=obs_shape, obs_dtype=str(in_dtype), action_shape=action_shape, action_dtype=str(action_dtype),
        baked_in=policy.baked_in, parity=parity, checks=checks,
        seconds={"export": t_export, "rollout": t_rollout, "checks": t_checks,
                 "total": time.perf_counter() - t_start},
        notes=notes, precision_report=prec_report, calibration=calibration,
    )

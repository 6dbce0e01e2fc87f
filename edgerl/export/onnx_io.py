"""torch -> ONNX: one self-contained file (no external data), dynamic batch, input ``obs``,
output ``action``, the opset actually written read back, and edgerl's metadata attached.

A recurrent policy's graph also takes its state and returns the next one: inputs ``obs, h_in
[, c_in]``, outputs ``action, h_out [, c_out]``, each state ``[layers, batch, hidden]``
(:func:`edgerl.runtime.contract.state_io_names`)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from edgerl.errors import BackendUnavailableError
from edgerl.export.errors import ExportError
from edgerl.export.wrappers import DeployedPolicy
from edgerl.runtime.contract import state_io_names

INPUT_NAME = "obs"
OUTPUT_NAME = "action"
LEGACY_DEFAULT_OPSET = 18
EXPORT_HINT = "pip install 'edgerl[train]' (onnx, onnxscript, onnxruntime)"


def import_onnx() -> Any:
    """``import onnx`` or raise with an install hint."""
    try:
        import onnx
    except ImportError as e:
        raise BackendUnavailableError(f"onnx is not installed ({e}); {EXPORT_HINT}") from None
    return onnx


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress logs and deprecation chatter (errors still raise)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def io_names(policy: DeployedPolicy) -> tuple[list[str], list[str]]:
    """Graph input and output names: ``obs -> action``, plus the state of a recurrent policy."""
    net = policy.recurrent
    if net is None:
        return [INPUT_NAME], [OUTPUT_NAME]
    ins, outs = state_io_names(net.rnn_type)
    return [INPUT_NAME, *ins], [OUTPUT_NAME, *outs]


def _dynamo(policy: DeployedPolicy, example: torch.Tensor, opset: int | None) -> Any:
    ins, outs = io_names(policy)
    batch = torch.export.Dim("batch")
    state = policy.initial_state(example.shape[0])
    shapes: Any = {INPUT_NAME: {0: batch}}
    if state:
        shapes["state"] = tuple({1: batch} for _ in state)
    program = torch.onnx.export(
        policy, (example, *state), None, input_names=ins, output_names=outs,
        opset_version=opset, dynamo=True, external_data=False, optimize=True, verbose=False,
        dynamic_shapes=shapes,
    )
    return program.model_proto


def _legacy(policy: DeployedPolicy, example: torch.Tensor, opset: int | None) -> Any:
    buf = io.BytesIO()
    ins, outs = io_names(policy)
    axes = {n: {1 if n.endswith(("_in", "_out")) else 0: "batch"} for n in (*ins, *outs)}
    torch.onnx.export(
        policy, (example, *policy.initial_state(example.shape[0])), buf, input_names=ins, output_names=outs,
        opset_version=opset or LEGACY_DEFAULT_OPSET, dynamo=False, verbose=False, dynamic_axes=axes,
    )
    return import_onnx().load_from_string(buf.getvalue())


def export_onnx(policy: DeployedPolicy, example: torch.Tensor, opset: int | None = None,
                exporter: str = "auto") -> tuple[Any, str, list[str]]:
    """Convert ``policy`` to an in-memory ONNX model.

    Args:
        policy: The wrapper to export (eval mode).
        example: An example input batch of at least 2 rows (the batch dimension is made dynamic).
        opset: Requested default-domain opset; None lets the exporter choose.
        exporter: ``"dynamo"`` (torch.export-based), ``"legacy"`` (TorchScript-based, deprecated),
            or ``"auto"``: dynamo, falling back to legacy if dynamo fails.

    Returns:
        ``(model_proto, exporter_used, notes)``.

    Raises:
        ExportError: The conversion failed (with the exporter's message).
    """
    import_onnx()
    notes: list[str] = []
    order = {"auto": ("dynamo", "legacy"), "dynamo": ("dynamo",), "legacy": ("legacy",)}[exporter]
    errors: list[str] = []
    for name in order:
        try:
            with _quiet(), torch.no_grad():
                model = (_dynamo if name == "dynamo" else _legacy)(policy, example, opset)
        except Exception as e:  # the exporters raise many kinds (export, translation, import errors)
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            errors.append(f"{name} exporter: {type(e).__name__}: {msg[:300]}")
            continue
        if errors:
            notes.append(f"the dynamo exporter failed ({errors[0]}); used the legacy TorchScript exporter")
        return model, name, notes
    raise ExportError(f"torch {torch.__version__} cannot export the policy to ONNX: {'; '.join(errors)}. "
                            "Try another --opset, or report the network type that fails")


def read_opset(model: Any) -> int:
    """The default-domain (``ai.onnx``) opset a model declares."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ValueError("the model declares no ai.onnx opset")


def set_metadata(model: Any, props: Mapping[str, str]) -> None:
    """Add (or replace) ``metadata_props`` entries on ``model``."""
    keep = [(p.key, p.value) for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    for key, value in [*keep, *props.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)


def get_metadata(model: Any) -> dict[str, str]:
    """A model's ``metadata_props`` as a dict."""
    return {p.key: p.value for p in model.metadata_props}

"""Errors of ``edgerl export`` (both are :class:`~edgerl.errors.EdgerlError`, so the CLI prints
them in one line and exits non-zero)."""

from __future__ import annotations

from edgerl.errors import EdgerlError


class ExportError(EdgerlError):
    """The policy could not be converted to ONNX."""


class ExportCheckError(ExportError):
    """The exported model failed a check (onnx.checker, signature, single file, bounds, parity).

    Nothing is written when a check fails, so a bad model never lands at the output path.
    """

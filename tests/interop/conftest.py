"""Parity helpers: an imported policy checkpoint against the source library's own inference, in
torch and in ONNX Runtime (legacy exporter: the fast one; the CLI test uses the default)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.export.checks import ort_session
from edgerl.export.onnx_io import export_onnx
from edgerl.export.policy import policy_from_checkpoint

N_OBS = 1000
TOL = 1e-5


def roundtrip(payload: dict[str, Any], tmp_path) -> dict[str, Any]:
    """Save and load the payload as every later command would."""
    path = tmp_path / "imported.pt"
    save_checkpoint(path, payload)
    return load_checkpoint(path)


def edgerl_actions(ckpt: dict[str, Any], obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Actions of the imported policy: eager torch and exported ONNX (ORT)."""
    policy = policy_from_checkpoint(ckpt)
    x = np.ascontiguousarray(obs, dtype=np.uint8 if obs.dtype == np.uint8 else np.float32)
    with torch.no_grad():
        torch_out = policy(torch.as_tensor(x)).numpy()
    model, _, _ = export_onnx(policy, torch.as_tensor(x[:2]), None, "legacy")
    onnx_out = ort_session(model.SerializeToString()).run(["action"], {"obs": x})[0]
    return torch_out, onnx_out


def assert_parity(ckpt: dict[str, Any], obs: np.ndarray, reference: np.ndarray, discrete: bool = False) -> dict:
    """Both edgerl paths match the library's actions: max |diff| <= 1e-5, or equal argmax."""
    torch_out, onnx_out = edgerl_actions(ckpt, obs)
    ref = np.asarray(reference).reshape(torch_out.shape)
    if discrete:
        assert np.array_equal(torch_out, ref), f"torch argmax differs on {(torch_out != ref).sum()} observations"
        assert np.array_equal(onnx_out, ref), f"ONNX argmax differs on {(onnx_out != ref).sum()} observations"
        assert len(np.unique(ref)) > 1, "the reference takes one action only: the test would not see a swap"
        return {"torch": 0.0, "onnx": 0.0}
    gaps = {"torch": float(np.abs(torch_out.astype(np.float64) - ref).max()),
            "onnx": float(np.abs(onnx_out.astype(np.float64) - ref).max())}
    for k, v in gaps.items():
        assert v <= TOL, f"{k} max |diff| {v:.3g} > {TOL}"  # fails on NaN too
    return gaps

"""Parity helpers: an imported policy checkpoint against the source library's own inference, in
torch and in ONNX Runtime (legacy exporter: the fast one; the CLI test uses the default)."""

from __future__ import annotations

from pathlib import Path
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


def recurrent_parity(tmp_path: Path, model: Path, library: str, obs: np.ndarray, starts: np.ndarray,
                     reference: np.ndarray, env_id: str | None = None) -> dict[str, float]:
    """Import a recurrent policy, then its torch policy (state fed back, zeroed where ``starts``) and the
    exported ONNX through the runtime's ``Policy`` (``reset()`` where ``starts``) against ``reference``."""
    from edgerl.export import export_policy
    from edgerl.interop import import_policy
    from edgerl.runtime.backends import get_backend
    from edgerl.runtime.contract import read_contract
    from edgerl.runtime.policy import Policy
    from edgerl.runtime.profile import load_profile

    payload, imported = import_policy(model, library, env_id=env_id)
    assert "recurrent" in imported.algo
    save_checkpoint(tmp_path / "policy.pt", payload)
    ckpt = load_checkpoint(tmp_path / "policy.pt")
    policy = policy_from_checkpoint(ckpt)
    torch_out = policy.run_sequence(torch.as_tensor(obs[:, None]), torch.as_tensor(starts[:, None]))[0][:, 0].numpy()
    report = export_policy(tmp_path / "policy.pt", tmp_path / "policy.onnx", recorded_steps=0, exporter="legacy")
    assert report.parity.worst <= TOL and report.parity.n_obs["random"] > 0
    profile = load_profile("x86-cpu")
    backend = get_backend("ort-cpu")(tmp_path / "policy.onnx", profile, tmp_path / "cache")
    runtime = Policy(backend, read_contract(tmp_path / "contract.json"), profile, tmp_path)
    assert runtime.recurrent
    runtime_out = []
    for t, o in enumerate(obs):
        if starts[t]:
            runtime.reset()
        runtime_out.append(runtime.act(o))
    runtime.close()
    gaps = {"torch": float(np.abs(torch_out.astype(np.float64) - reference).max()),
            "runtime": float(np.abs(np.asarray(runtime_out, np.float64) - reference).max())}
    for k, v in gaps.items():
        assert v <= TOL, f"{k} max |diff| {v:.3g} > {TOL}"  # fails on NaN too
    # the memory matters: without the resets (or with the state dropped) the actions differ
    no_reset = policy.run_sequence(torch.as_tensor(obs[:, None]))[0][:, 0].numpy()
    assert np.abs(no_reset - reference).max() > 1e-3
    return gaps

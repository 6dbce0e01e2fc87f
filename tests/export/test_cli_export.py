"""``edgerl export`` as a user runs it: after a tiny ``edgerl train``, and on a bad checkpoint."""

from __future__ import annotations

import json

import onnx

from edgerl.runtime.contract import read_contract
from tests.conftest import TINY_SAC, run_cli


def test_export_after_tiny_train(tmp_path):
    run = tmp_path / "run"
    run_cli("train", *TINY_SAC, "--total-steps", "200", "--out", str(run))
    proc = run_cli("export", str(run / "ckpt.pt"), "--json")
    report = json.loads(proc.stdout)
    assert report["onnx_path"] == str(run / "policy.onnx") and report["steps"] == 200
    assert report["parity"]["worst"] <= 1e-5 and set(report["parity"]["n_obs"]) == {"random", "recorded"}
    assert sorted(p.name for p in run.glob("policy*")) == ["policy.onnx"]  # single file
    onnx.checker.check_model(onnx.load(run / "policy.onnx"), full_check=True)
    assert read_contract(run / "contract.json").raw["source"]["steps"] == 200

    text = run_cli("export", str(run), "-o", str(tmp_path / "p.onnx"), "--recorded-steps", "20").stdout
    assert "max |diff|" in text and "checks     passed" in text and (tmp_path / "contract.json").exists()


def test_export_bad_checkpoint_fails_loudly(tmp_path):
    bad = tmp_path / "ckpt.pt"
    bad.write_bytes(b"not a checkpoint")
    proc = run_cli("export", str(bad), check=False)
    assert proc.returncode != 0
    assert "edgerl export: error:" in proc.stderr and str(bad) in proc.stderr
    assert not (tmp_path / "policy.onnx").exists()


def test_export_rejects_bad_opset(tmp_path):
    proc = run_cli("export", str(tmp_path / "missing.pt"), "--opset", "3", check=False)
    assert proc.returncode == 2 and "--opset 3 is out of range" in proc.stderr

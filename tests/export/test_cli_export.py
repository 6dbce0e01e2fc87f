"""``edgerl export`` as a user runs it: after a tiny ``edgerl train`` run (a subprocess), with
its text and JSON reports and its failures. The export itself runs in-process through
``edgerl.cli.main`` (what ``python -m edgerl.cli`` runs), so the suite pays torch.onnx's start-up
cost once."""

from __future__ import annotations

import json

import onnx

from edgerl.cli import main
from edgerl.runtime.contract import read_contract
from tests.conftest import TINY_SAC, run_cli
from tests.export.conftest import write_sac_checkpoint


def test_export_after_tiny_train(tmp_path, capsys):
    run = tmp_path / "run"
    run_cli("train", *TINY_SAC, "--total-steps", "200", "--out", str(run))
    assert main(["export", str(run / "ckpt.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["onnx_path"] == str(run / "policy.onnx") and report["steps"] == 200
    assert report["parity"]["worst"] <= 1e-5 and set(report["parity"]["n_obs"]) == {"random", "recorded"}
    assert sorted(p.name for p in run.glob("policy*")) == ["policy.onnx"]  # single file, no .data
    onnx.checker.check_model(onnx.load(run / "policy.onnx"), full_check=True)
    assert read_contract(run / "contract.json").raw["source"]["steps"] == 200


def test_text_report(tmp_path, hopper_env, capsys):
    ckpt = write_sac_checkpoint(tmp_path / "run" / "ckpt.pt", hopper_env)
    assert main(["export", str(ckpt.parent), "-o", str(tmp_path / "p.onnx"), "--recorded-steps", "20",
                 "--exporter", "legacy", "--opset", "17"]) == 0
    text = capsys.readouterr().out
    assert "max |diff|" in text and "checks     passed" in text and "opset      17, legacy exporter" in text
    assert (tmp_path / "p.onnx").is_file() and (tmp_path / "contract.json").is_file()


def test_bad_checkpoint_fails_loudly(tmp_path, capsys):
    bad = tmp_path / "ckpt.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "edgerl export: error:" in err and str(bad) in err
    assert not (tmp_path / "policy.onnx").exists()


def test_bad_opset_fails_loudly(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.pt"), "--opset", "3"]) == 2
    assert "--opset 3 is out of range" in capsys.readouterr().err

"""The deploy side end to end: train -> compact -> deploy -> run, as a user types it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import TINY_SAC, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy") / "run"
    run_cli("train", *TINY_SAC, "--hidden", "48,40", "--prune", "gradual", "--final-ratio", "0.5",
            "--prune-every", "20", "--obs-norm", "true", "--total-steps", "400", "--eval-every", "0",
            "--out", str(out))
    return out


def test_train_compact_deploy_run_x86(trained, tmp_path):
    run_cli("compact", str(trained), "--recorded-steps", "64")
    bundle = tmp_path / "bundle"
    run_cli("deploy", str(trained / "compact.pt"), "--target", "x86-cpu", "-o", str(bundle),
            "--recorded-steps", "64", "--json", str(tmp_path / "d.json"))
    manifest = json.loads((bundle / "manifest.json").read_text())
    for f in ("policy.onnx", "contract.json", "reference.npz", "profile.json", "install.sh", "launch.sh",
              "edgerl-policy.service", "README.md"):
        assert f in manifest["files"], f
    assert any(f.startswith("runtime/edgerl_runtime/") for f in manifest["files"])
    contract = json.loads((bundle / "contract.json").read_text())
    assert "observation_normalizer" in contract["baked_in"] and "action_rescale" in contract["baked_in"]
    res_file = tmp_path / "run.json"
    run_cli("run", str(bundle), "--episodes", "2", "--max-steps", "200", "--json", str(res_file))
    res = json.loads(res_file.read_text())
    assert res["backend"] == "ort-cpu"
    # The runtime policy and the torch policy agree episode by episode on the same seeds.
    np.testing.assert_allclose(res["runtime_returns"], res["torch_returns"], rtol=1e-4, atol=1e-3)
    assert res["latency"]["count"] >= 2 and res["latency"]["p50_us"] > 0
    wrong = run_cli("run", str(bundle), "--env", "HalfCheetah-v5", "--episodes", "1", check=False)
    (line,) = [ln for ln in wrong.stderr.splitlines() if ln.startswith("edgerl run: error:")]  # MuJoCo may warn too
    assert wrong.returncode == 2 and line.endswith(
        "HalfCheetah-v5 observes [17] but the bundle takes [11]; pass the env it was trained on (--env Hopper-v5)")


def test_deploy_jetson_bundle_is_complete(trained, tmp_path):
    bundle = tmp_path / "jetson"
    proc = run_cli("deploy", str(trained), "--target", "jetson", "-o", str(bundle), "--recorded-steps", "0")
    assert "trt > ort-cuda > ort-cpu" in proc.stdout
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert "build_engine.sh" in manifest["files"]
    profile = json.loads((bundle / "profile.json").read_text())
    assert profile["family"] == "jetson" and profile["backends"][0] == "trt"
    # On this machine (no TensorRT, no CUDA) the runtime falls back to ONNX Runtime CPU and says why.
    res_file = tmp_path / "run.json"
    run_cli("run", str(bundle), "--episodes", "1", "--max-steps", "50", "--no-compare", "--json", str(res_file))
    res = json.loads(res_file.read_text())
    assert res["backend"] == "ort-cpu" and "trt" in res["skipped_backends"]


def test_tampered_bundle_is_refused(trained, tmp_path):
    bundle = tmp_path / "b"
    run_cli("deploy", str(trained), "--target", "x86-cpu", "-o", str(bundle), "--recorded-steps", "0")
    onnx = bundle / "policy.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    proc = run_cli("run", str(bundle), "--episodes", "1", check=False)
    assert proc.returncode == 2 and "policy.onnx" in proc.stderr and "Traceback" not in proc.stderr


def test_deploy_unknown_target_is_an_error(trained, tmp_path):
    proc = run_cli("deploy", str(trained), "--target", "raspberry-pi-9", "-o", str(tmp_path / "x"), check=False)
    assert proc.returncode == 2 and "raspberry-pi-9" in proc.stderr and "Traceback" not in proc.stderr


def _export_into(run, real: bool) -> None:
    if real:
        run_cli("export", str(run / "ckpt.pt"), "--recorded-steps", "0")
    else:  # what `edgerl export RUN/ckpt.pt` leaves there, without its 15 s
        (run / "policy.onnx").write_bytes(b"onnx")
        (run / "contract.json").write_text(json.dumps({"format": "edgerl-contract", "version": 1}))


@pytest.mark.parametrize("real_export", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_force_never_replaces_a_run_folder(trained, tmp_path, real_export):
    """Issue 12 probe (item 5): export's contract.json fooled the 'not a bundle' guard of --force."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    _export_into(run, real_export)
    assert (run / "contract.json").exists()
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    proc = run_cli("deploy", str(run / "ckpt.pt"), "--target", "x86-cpu", "-o", str(run), "--force", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "is not an edgerl bundle" in proc.stderr and "ckpt.pt" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing lost


@pytest.mark.slow
def test_signed_deploy_is_checked_by_the_robot(trained, tmp_path):
    key = tmp_path / "keys" / "k"
    key.parent.mkdir()
    run_cli("deploy", "--gen-key", str(key))
    bundle = tmp_path / "b"
    proc = run_cli("deploy", str(trained), "--target", "x86-cpu", "-o", str(bundle), "--recorded-steps", "0",
                   "--sign", str(key))
    assert "signed by key" in proc.stdout and (bundle / "manifest.sig").is_file()
    ok = subprocess.run([sys.executable, "-m", "edgerl.runtime", "verify", str(bundle), "--trusted-key", f"{key}.pub"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "signed by trusted key" in ok.stdout, ok.stderr
    # redeploying unsigned over it removes the old signature: the robot refuses the new bundle
    run_cli("deploy", str(trained), "--target", "x86-cpu", "-o", str(bundle), "--recorded-steps", "0", "--force")
    assert not (bundle / "manifest.sig").exists()
    bad = subprocess.run([sys.executable, "-m", "edgerl.runtime", "verify", str(bundle), "--trusted-key", f"{key}.pub"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "manifest.sig: missing" in bad.stderr


def test_deploy_with_a_bad_signing_key_fails_before_any_work(trained, tmp_path):
    (tmp_path / "k").write_text("not a key")
    proc = run_cli("deploy", str(trained), "--target", "x86-cpu", "-o", str(tmp_path / "b"), "--sign",
                   str(tmp_path / "k"), check=False)
    assert proc.returncode == 2 and "is not an unencrypted PEM private key" in proc.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("args", [["--episodes", "0"], ["--episodes", "-2"], ["--max-steps", "0"]])
def test_run_refuses_non_positive_counts(tmp_path, capsys, args):
    from edgerl.cli import main

    assert main(["run", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert "edgerl run: error:" in err and "must be >= 1" in err and len(err.strip().splitlines()) == 1

"""Issue 12 probes: nothing planted in a bundle verifies, --force never deletes what is not a bundle."""

from __future__ import annotations

import json
import os

import pytest
from conftest import contract

from edgerl.runtime.bundle import WRITING_MARKER, check_output_dir, verify_bundle
from edgerl.runtime.errors import BundleError
from edgerl.runtime.fileio import sha256_file
from edgerl.runtime.policy import Policy


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(("rel", "named", "why"), [
    # Python would run these instead of (or before) the verified sources
    ("runtime/edgerl_runtime/__pycache__/cli.cpython-311.pyc", "runtime/edgerl_runtime/__pycache__", "bytecode"),
    ("runtime/edgerl_runtime/cli.cpython-311.pyc", "runtime/edgerl_runtime/cli.cpython-311.pyc", "bytecode"),
    (".venv/lib/python3.11/site-packages/x.pth", ".venv", "virtualenv"),
    ("sitecustomize.py", "sitecustomize.py", "not listed"),
    ("runtime/usercustomize.py", "runtime/usercustomize.py", "not listed"),
    ("runtime/edgerl_runtime/evil.pth", "runtime/edgerl_runtime/evil.pth", "not listed"),
    ("onnxruntime/__init__.py", "onnxruntime", "folder that manifest.json does not list"),
    ("notes.txt", "notes.txt", "not listed"),
    # device-local folders hold data only
    ("cache/x.pth", "cache/x.pth", "looks like code"),
    ("cache/__pycache__/a.pyc", "cache/__pycache__", "looks like code"),
    ("logs/hook.py", "logs/hook.py", "looks like code"),
    ("cache/engine.so", "cache/engine.so", "looks like code"),
])
def test_planted_files_are_refused(bundle, rel, named, why):
    path = bundle / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("import os; os.system('echo pwned')\n")
    with pytest.raises(BundleError) as e:
        verify_bundle(bundle)
    msg = _one_line(e)
    assert f"{bundle / named}:" in msg and why in msg
    with pytest.raises(BundleError):
        Policy.load(bundle)


def test_empty_unlisted_folder_is_refused(bundle):
    (bundle / "onnxruntime").mkdir()  # an importable namespace package if the bundle were on sys.path
    with pytest.raises(BundleError, match=r"onnxruntime: is a folder that manifest.json does not list"):
        verify_bundle(bundle)


def test_folder_symlink_leaving_the_bundle_is_refused(bundle, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "__init__.py").write_text("raise SystemExit('pwned')\n")
    (bundle / "onnxruntime").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(BundleError) as e:
        verify_bundle(bundle)
    assert f"{bundle / 'onnxruntime'}: is a symbolic link (to {elsewhere})" in _one_line(e)


@pytest.mark.parametrize("rel", ["cache", "logs/today"])
def test_device_folder_symlinks_are_refused(bundle, tmp_path, rel):
    (tmp_path / "t").mkdir()
    (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
    (bundle / rel).symlink_to(tmp_path / "t", target_is_directory=True)
    with pytest.raises(BundleError, match=rf"{rel}: is a symbolic link"):
        verify_bundle(bundle)


def test_listed_file_replaced_by_a_symlink_is_refused(bundle, tmp_path):
    # Same bytes, but through a link: the file could change behind the verifier's back.
    target = tmp_path / "policy.onnx"
    target.write_bytes((bundle / "policy.onnx").read_bytes())
    (bundle / "policy.onnx").unlink()
    (bundle / "policy.onnx").symlink_to(target)
    with pytest.raises(BundleError, match=r"policy.onnx: is a symbolic link"):
        verify_bundle(bundle)


def test_fifo_is_refused(bundle):
    os.mkfifo(bundle / "pipe")
    with pytest.raises(BundleError, match="pipe: is neither a regular file nor a folder"):
        verify_bundle(bundle)


def test_bundle_root_may_be_a_symlink(bundle, tmp_path):
    (tmp_path / "current").symlink_to(bundle, target_is_directory=True)  # /opt/edgerl/current -> bundle-v3
    assert verify_bundle(tmp_path / "current")["profile"] == "x86-cpu"


@pytest.mark.parametrize("rel", ["cache/x.engine", "manifest.sig", "../outside", "a//b", "./policy.onnx"])
def test_manifest_may_not_list_reserved_or_unnormalised_paths(bundle, rel):
    m = json.loads((bundle / "manifest.json").read_text())
    m["files"][rel] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="lists the unsafe path"):
        verify_bundle(bundle)


def test_interrupted_write_marker_is_refused_but_replaceable(bundle, make_bundle):
    files = sorted(json.loads((bundle / "manifest.json").read_text())["files"])
    (bundle / WRITING_MARKER).write_text(json.dumps({"format": "edgerl-bundle", "files": files}))
    with pytest.raises(BundleError, match="interrupted edgerl deploy; re-run it with --force"):
        verify_bundle(bundle)
    (bundle / "manifest.json").unlink()  # the write died before the manifest: the marker still proves ownership
    make_bundle(out_dir=bundle, overwrite=True)
    verify_bundle(bundle)
    assert not (bundle / WRITING_MARKER).exists()


def test_force_refuses_an_export_folder_and_names_what_would_be_lost(make_bundle, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("ckpt.pt", "compact.pt", "metrics.csv", "replay-400.npz", "policy.onnx"):
        (run / name).write_text(name)
    (run / "contract.json").write_text(json.dumps(contract()))  # what fooled the old guard
    with pytest.raises(BundleError) as e:
        make_bundle(out_dir=run, overwrite=True)
    assert "not an edgerl bundle" in _one_line(e) and "ckpt.pt" in str(e.value)
    assert sorted(p.name for p in run.iterdir()) == ["ckpt.pt", "compact.pt", "contract.json", "metrics.csv",
                                                     "policy.onnx", "replay-400.npz"]
    assert (run / "ckpt.pt").read_text() == "ckpt.pt"


def test_force_refuses_a_bundle_holding_foreign_files(bundle, make_bundle):
    (bundle / "ckpt.pt").write_text("weights")
    (bundle / "runtime" / "edgerl_runtime" / "__pycache__").mkdir()
    with pytest.raises(BundleError) as e:
        make_bundle(out_dir=bundle, overwrite=True)
    msg = _one_line(e)
    assert "holds 2 item(s) the previous bundle does not own" in msg
    assert "ckpt.pt" in msg and "runtime/edgerl_runtime/__pycache__/" in msg
    assert (bundle / "ckpt.pt").read_text() == "weights"
    # the old bundle is untouched: nothing was deleted or rewritten
    assert sha256_file(bundle / "policy.onnx") == json.loads((bundle / "manifest.json").read_text())["files"]["policy.onnx"]


def test_force_replaces_a_previous_bundle_keeping_device_state(bundle, make_bundle):
    (bundle / "cache").mkdir()
    (bundle / "cache" / "x.engine").write_text("engine")
    (bundle / "logs").mkdir()
    (bundle / "logs" / "run.log").write_text("log")
    assert "policy.onnx" in check_output_dir(bundle, overwrite=True)
    make_bundle(out_dir=bundle, overwrite=True)
    verify_bundle(bundle)
    assert (bundle / "cache" / "x.engine").read_text() == "engine" and (bundle / "logs" / "run.log").exists()


def test_output_path_that_is_a_file_or_link(tmp_path, bundle):
    (tmp_path / "f").write_text("x")
    with pytest.raises(BundleError, match="exists and is not a folder"):
        check_output_dir(tmp_path / "f", overwrite=True)
    (tmp_path / "link").symlink_to(bundle, target_is_directory=True)
    with pytest.raises(BundleError, match="exists and is not a folder"):
        check_output_dir(tmp_path / "link", overwrite=True)

"""Bundle writing and verification: round trip, tamper detection, overwrite rules."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
from conftest import contract

from edgerl.runtime.bundle import REQUIRED_FILES, verify_bundle, write_bundle
from edgerl.runtime.errors import BundleError
from edgerl.runtime.fileio import sha256_file
from edgerl.runtime.policy import Policy


def test_round_trip_layout_and_manifest(bundle, mlp):
    m = verify_bundle(bundle)
    assert (m["format"], m["version"], m["profile"]) == ("edgerl-bundle", 1, "x86-cpu")
    files = m["files"]
    assert set(REQUIRED_FILES) <= set(files)
    assert {"runtime/edgerl_runtime/__init__.py", "runtime/edgerl_runtime/policy.py",
            "runtime/edgerl_runtime/backends/tensorrt.py", "runtime/install_runtime.py"} <= set(files)
    assert {"install.sh", "launch.sh", "edgerl-policy.service", "README.md"} <= set(files)
    assert "build_engine.sh" not in files  # x86 family: no TensorRT
    assert "manifest.json" not in files
    for rel, digest in files.items():
        assert sha256_file(bundle / rel) == digest
    assert os.stat(bundle / "install.sh").st_mode & stat.S_IXUSR
    assert os.stat(bundle / "contract.json").st_mode & 0o777 == 0o644
    assert m["versions"]["edgerl_runtime"] == "0.1.0"
    with np.load(bundle / "reference.npz") as z:
        np.testing.assert_array_equal(z["action"], mlp.numpy(z["obs"]))
    assert json.loads((bundle / "profile.json").read_text())["name"] == "x86-cpu"


def test_jetson_bundle_carries_engine_build_script(make_bundle):
    out = make_bundle(profile="jetson-xavier-nx")
    assert "build_engine.sh" in verify_bundle(out)["files"]
    assert json.loads((out / "profile.json").read_text())["trt_version"] == "8.5"


def _flip_byte(path, offset=-10):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("rel", ["policy.onnx", "reference.npz", "runtime/edgerl_runtime/policy.py", "install.sh"])
def test_changed_byte_is_detected(bundle, rel):
    _flip_byte(bundle / rel)
    with pytest.raises(BundleError, match=rf"{rel}: was modified after deployment \(sha256 .*re-run edgerl deploy"):
        verify_bundle(bundle)
    with pytest.raises(BundleError):
        Policy.load(bundle)


def test_missing_file_is_detected(bundle):
    (bundle / "contract.json").unlink()
    with pytest.raises(BundleError, match="contract.json: is listed in manifest.json but missing"):
        verify_bundle(bundle)


@pytest.mark.parametrize("rel", ["policy.onnx.data", "runtime/edgerl_runtime/evil.py", "notes.txt"])
def test_extra_file_is_detected(bundle, rel):
    (bundle / rel).write_text("x")
    with pytest.raises(BundleError, match=rf"{rel}: is not listed in manifest.json.*remove it"):
        verify_bundle(bundle)


@pytest.mark.parametrize("rel", ["cache/policy.engine", "cache/policy.json", "cache/device_state.txt",
                                 "logs/run.log", "logs/2026/summary.json"])
def test_device_local_data_files_are_allowed(bundle, rel):
    (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
    (bundle / rel).write_text("x")
    verify_bundle(bundle)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "malformed JSON"),
    ('{"format": "edgerl-bundle", "version": 2, "files": {}}', "bundle version 2 is not supported"),
    ('{"format": "other", "version": 1, "files": {}}', "'format' is 'other'"),
    ('{"format": "edgerl-bundle", "version": 1, "files": {"../x": "' + "0" * 64 + '"}}', "unsafe path"),
    ('[1, 2]', "must be a JSON object"),
])
def test_bad_manifest_is_refused(bundle, text, message):
    (bundle / "manifest.json").write_text(text)
    with pytest.raises(BundleError, match=rf"manifest.json: .*{message}"):
        verify_bundle(bundle)


def test_missing_manifest_means_incomplete_bundle(bundle):
    (bundle / "manifest.json").unlink()
    with pytest.raises(BundleError, match="not a complete edgerl bundle"):
        verify_bundle(bundle)


def test_not_a_directory(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        verify_bundle(tmp_path / "nope")


def test_output_folder_rules(make_bundle, bundle, tmp_path):
    with pytest.raises(BundleError, match=r"is not empty \(.*\); choose a new folder or overwrite"):
        make_bundle(out_dir=bundle)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("precious")
    with pytest.raises(BundleError, match=r"not an edgerl bundle \(no manifest.json .*\); refusing to replace it, which would delete thesis.tex"):
        make_bundle(out_dir=tmp_path / "home", overwrite=True)
    assert (tmp_path / "home" / "thesis.tex").read_text() == "precious"


def test_overwrite_replaces_stale_files_and_keeps_cache(make_bundle):
    out = make_bundle(profile="jetson-orin-nano")
    (out / "cache").mkdir()
    (out / "cache" / "x.engine").write_text("engine")
    make_bundle(out_dir=out, overwrite=True)  # x86 profile: no build_engine.sh any more
    files = verify_bundle(out)["files"]
    assert not (out / "build_engine.sh").exists() and "build_engine.sh" not in files
    assert (out / "cache" / "x.engine").read_text() == "engine"


def test_write_refuses_wrong_reference_and_leaves_no_manifest(make_bundle, mlp, tmp_path):
    obs = np.random.default_rng(0).standard_normal((8, 11))
    wrong = mlp.numpy(obs)
    wrong[3, 1] += 0.01
    with pytest.raises(BundleError, match=r"reference check failed .*sample 3"):
        make_bundle(reference_obs=obs, reference_actions=wrong, out_dir=tmp_path / "b")
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_write_checks_arguments(tmp_path, mlp, x86):
    onnx_path = mlp.save(tmp_path / "p.onnx")
    obs = np.zeros((4, 11))
    with pytest.raises(BundleError, match=r"reference arrays must be obs \[N, \[11\]\]"):
        write_bundle(tmp_path / "a", onnx_path, contract(), obs, np.zeros((4, 2)), x86)
    with pytest.raises(BundleError, match="does not exist; export the policy first"):
        write_bundle(tmp_path / "b", tmp_path / "missing.onnx", contract(), obs, mlp.numpy(obs), x86)
    with pytest.raises(BundleError, match="'format' is 'x'"):
        write_bundle(tmp_path / "c", onnx_path, {**contract(), "format": "x"}, obs, mlp.numpy(obs), x86)
    with pytest.raises(BundleError, match="device files for family 'x86' not found"):
        write_bundle(tmp_path / "d", onnx_path, contract(), obs, mlp.numpy(obs), x86,
                     device_files_dir=tmp_path / "nodeploy")


def test_contract_errors_name_the_key(make_bundle):
    c = contract()
    c["action"]["shape"] = [2]
    with pytest.raises(BundleError, match=r"action.low has 3 entries but the shape \[2\] needs 2"):
        make_bundle(contract=c)


@pytest.mark.parametrize("name", ["contract.json", "profile.json"])
def test_malformed_json_inside_the_bundle_names_the_file(bundle, name):
    (bundle / name).write_text("{oops")
    with pytest.raises(BundleError, match=rf"{name}: was modified"):
        Policy.load(bundle)
    with pytest.raises(BundleError, match=rf"{name}: malformed JSON .*re-run edgerl deploy"):
        Policy.load(bundle, verify=False)


def test_numpy_values_in_the_contract_are_written_as_json(make_bundle):
    c = contract()
    c["action"]["low"], c["action"]["high"] = np.array([-1.0, -2.0, 0.0]), np.array([1.0, 0.5, 3.0], np.float32)
    c["observation"]["shape"] = [np.int64(11)]
    out = make_bundle(contract=c)
    written = json.loads((out / "contract.json").read_text())
    assert written["action"]["low"] == [-1.0, -2.0, 0.0] and written["observation"]["shape"] == [11]

"""Backend registry and selection: fall back in profile order, with the reason logged."""

from __future__ import annotations

import logging

import pytest
from conftest import ref_obs

from edgerl.runtime.backends import BACKENDS, available_backends, get_backend, register_backend
from edgerl.runtime.backends.ort import OrtCpuBackend
from edgerl.runtime.errors import BackendUnavailableError, ProfileError
from edgerl.runtime.policy import Policy

TRT_OK, TRT_REASON = BACKENDS["trt"].available()
CUDA_OK, CUDA_REASON = BACKENDS["ort-cuda"].available()


def test_registry_holds_the_three_backends():
    assert set(BACKENDS) == {"trt", "ort-cuda", "ort-cpu", "c"}
    assert get_backend("ort-cpu") is OrtCpuBackend and OrtCpuBackend.name == "ort-cpu"
    assert available_backends()["ort-cpu"][0] is True


def test_unknown_backend_name():
    with pytest.raises(ProfileError, match=r"unknown backend 'openvino'; known backends: \['c', 'ort-cpu', 'ort-cuda', 'trt'\]"):
        get_backend("openvino")


def test_registering_a_name_twice_is_an_error():
    with pytest.raises(ValueError, match="registered twice"):
        register_backend("ort-cpu")(type("Other", (OrtCpuBackend,), {}))
    assert BACKENDS["ort-cpu"] is OrtCpuBackend


@pytest.mark.skipif(TRT_OK, reason="TensorRT is installed here; the fallback path is not exercised")
def test_trt_unavailable_reason_has_install_hint():
    assert "TensorRT not installed" in TRT_REASON
    assert "pip install 'edgerl[trt]'" in TRT_REASON and "python3-libnvinfer" in TRT_REASON


@pytest.mark.skipif(CUDA_OK, reason="onnxruntime has CUDA here; the fallback path is not exercised")
def test_ort_cuda_unavailable_reason_names_the_provider():
    assert "CUDAExecutionProvider" in CUDA_REASON and "onnxruntime-gpu" in CUDA_REASON


@pytest.mark.skipif(TRT_OK or CUDA_OK, reason="a GPU backend is available here")
def test_selection_falls_back_in_order_with_reasons(make_bundle, caplog):
    with caplog.at_level(logging.WARNING), Policy.load(make_bundle(profile="jetson-orin-nano")) as p:
        assert p.backend_name == "ort-cpu"
        assert list(p.skipped_backends) == ["trt", "ort-cuda"]
        assert p.skipped_backends["trt"] == TRT_REASON
        assert p.act(ref_obs(1)[0]).shape == (3,)
    assert "skipping backend trt: TensorRT not installed" in caplog.text
    assert "skipping backend ort-cuda" in caplog.text


@pytest.mark.skipif(TRT_OK or CUDA_OK, reason="a GPU backend is available here")
def test_no_usable_backend_lists_every_reason(bundle):
    with pytest.raises(BackendUnavailableError, match=r"no usable backend among \['trt', 'ort-cuda'\] \(trt: TensorRT not installed.*ort-cuda: CUDAExecutionProvider"):
        Policy.load(bundle, backends=["trt", "ort-cuda"])


def test_explicit_backend_list_overrides_profile(make_bundle):
    with Policy.load(make_bundle(profile="desktop-gpu"), backends=["ort-cpu"]) as p:
        assert p.backend_name == "ort-cpu" and p.skipped_backends == {}


def test_cached_engine_is_used_only_if_it_matches_its_record(tmp_path):
    """The engine cache is device-local, outside the manifest: each engine is checked by its own sha256."""
    import json

    from edgerl.runtime.backends.tensorrt import cached_engine_ok
    from edgerl.runtime.fileio import sha256_file

    engine = tmp_path / "policy-abc.engine"
    engine.write_bytes(b"plan")
    assert not cached_engine_ok(engine, "abc")  # no record
    record = {"onnx_sha256": "abc", "engine_sha256": sha256_file(engine)}
    engine.with_suffix(".json").write_text(json.dumps(record))
    assert cached_engine_ok(engine, "abc")
    assert not cached_engine_ok(engine, "other-onnx")
    engine.write_bytes(b"plan with a planted plugin")
    assert not cached_engine_ok(engine, "abc")
    engine.with_suffix(".json").write_text("{oops")
    assert not cached_engine_ok(engine, "abc")

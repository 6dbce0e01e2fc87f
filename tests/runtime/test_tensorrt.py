"""TensorRT backend on real TensorRT + a CUDA GPU. Skipped where TensorRT is absent (no fakes)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ref_obs

trt = pytest.importorskip("tensorrt", reason="TensorRT not installed")
pytestmark = pytest.mark.trt

from edgerl.runtime.backends.tensorrt import TensorRTBackend, build_engine  # noqa: E402
from edgerl.runtime.policy import Policy  # noqa: E402
from edgerl.runtime.profile import load_profile  # noqa: E402

OK, REASON = TensorRTBackend.available()
if not OK:
    pytest.skip(f"TensorRT backend unavailable: {REASON}", allow_module_level=True)


@pytest.fixture
def gpu_bundle(make_bundle):
    return make_bundle(profile="desktop-gpu" if int(trt.__version__.split(".")[0]) >= 11 else "jetson-orin-nano")


def test_engine_is_built_once_and_cached(gpu_bundle):
    profile = load_profile(gpu_bundle.joinpath("profile.json"))
    path = build_engine(gpu_bundle / "policy.onnx", profile, gpu_bundle / "cache")
    assert path.is_file() and path.with_suffix(".json").is_file() and trt.__version__ in path.name
    mtime = path.stat().st_mtime_ns
    assert build_engine(gpu_bundle / "policy.onnx", profile, gpu_bundle / "cache") == path
    assert path.stat().st_mtime_ns == mtime


def test_trt_policy_matches_reference(gpu_bundle, mlp):
    with Policy.load(gpu_bundle, backends=["trt"]) as p:
        assert p.backend_name == "trt"
        obs = ref_obs(40, seed=8)  # more than one optimisation-profile batch on Jetson profiles
        np.testing.assert_allclose(p.act_batch(obs), mlp.numpy(obs), atol=p.profile.effective_atol)
        np.testing.assert_allclose(p.act(obs[0]), mlp.numpy(obs[:1])[0], atol=p.profile.effective_atol)


def test_corrupt_cached_engine_is_rebuilt(gpu_bundle):
    with Policy.load(gpu_bundle, backends=["trt"]) as p:
        engine = p.backend.engine_path
    engine.write_bytes(b"not an engine")
    with Policy.load(gpu_bundle, backends=["trt"]) as p:
        assert p.backend_name == "trt" and engine.stat().st_size > 100

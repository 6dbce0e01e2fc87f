"""TensorRT precision logic without TensorRT: network/builder flags per version and the engine
cache key (pure functions of tensorrt.py; the real build runs only where TensorRT and a GPU are)."""

from __future__ import annotations

import dataclasses

import pytest

from edgerl.runtime.backends.tensorrt import (
    builder_flag_names,
    builder_settings,
    engine_key,
    engine_path,
    network_flag_names,
    version_major,
)
from edgerl.runtime.profile import load_profile


@pytest.mark.parametrize(("major", "strong", "expected"), [
    (8, False, ["EXPLICIT_BATCH"]), (10, True, []), (11, True, ["STRONGLY_TYPED"]), (11, False, []),
])
def test_network_flags(major, strong, expected):
    assert network_flag_names(major, strong) == expected


@pytest.mark.parametrize(("major", "precision", "graph", "expected"), [
    (11, "fp16", "fp16", []), (11, "int8", "int8", []), (11, "fp16", "fp32", []),  # strongly typed: the graph decides
    (10, "fp32", "fp32", []), (10, "fp16", "fp32", ["FP16"]), (10, "int8", "int8", ["INT8"]),
    (8, "fp16", "int8", ["FP16", "INT8"]), (8, "fp32", "fp16", ["FP16"]),
])
def test_builder_flags_only_below_11(major, precision, graph, expected):
    assert builder_flag_names(major, precision, graph) == expected


def test_engine_key_covers_every_builder_setting(tmp_path):
    prof = load_profile("desktop-gpu")
    base = dict(onnx_sha256="ab" * 32, trt_version="10.3.0", gpu="Orin (nvgpu)", sm=(8, 7), graph="fp32",
                has_strongly_typed=True)
    s0 = builder_settings(profile=prof, **base)
    variants = [
        builder_settings(profile=dataclasses.replace(prof, precision="fp16"), **base),
        builder_settings(profile=dataclasses.replace(prof, precision="int8"), **{**base, "graph": "int8"}),
        builder_settings(profile=dataclasses.replace(prof, trt_workspace_mb=2048), **base),
        builder_settings(profile=dataclasses.replace(prof, max_batch=8), **base),
        builder_settings(profile=prof, **{**base, "trt_version": "10.4.0"}),
        builder_settings(profile=prof, **{**base, "sm": (8, 6)}),
        builder_settings(profile=prof, **{**base, "onnx_sha256": "cd" * 32}),
        builder_settings(profile=prof, **{**base, "trt_version": "11.0.0", "has_strongly_typed": False}),
        builder_settings(profile=prof, **{**base, "trt_version": "11.0.0"}),
    ]
    paths = {engine_path(tmp_path, s) for s in [s0, *variants]}
    assert len(paths) == 1 + len(variants)
    assert engine_key(dict(s0)) == engine_key(s0) and len(engine_key(s0)) == 12
    name = engine_path(tmp_path, variants[1]).name
    assert name.startswith("policy-abababababababab-trt10.3.0-orin-nvgpu-sm87-int8-int8-b") and name.endswith(".engine")
    assert variants[1]["builder_flags"] == ["INT8"] and s0["builder_flags"] == []
    assert version_major("10.3.0") == 10

"""Target profile schema: strict validation, aliases, the shipped profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgerl.runtime.errors import ProfileError
from edgerl.runtime.profile import (
    ALIASES,
    TargetProfile,
    default_profiles_dir,
    load_profile,
    profile_from_json,
    profile_to_json,
    validate_profile,
)

SHIPPED = sorted(p.stem for p in default_profiles_dir().glob("*.yaml"))
BASE = {"name": "t", "family": "x86", "backends": ["ort-cpu"], "precision": "fp32", "threads": 1,
        "control_rate_hz": 50, "latency_budget_us": 1000}


def test_shipped_profiles_are_the_expected_six():
    assert SHIPPED == ["desktop-gpu", "jetson-agx-orin", "jetson-orin-nano", "jetson-xavier-nx", "mcu-cortex-m4",
                       "x86-cpu"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profile_loads_and_round_trips(name, tmp_path):
    p = load_profile(name)
    assert p.name == name
    assert p.latency_budget_us <= p.period_us
    path = tmp_path / "profile.json"
    path.write_text(profile_to_json(p))
    assert profile_from_json(path) == p


@pytest.mark.parametrize(("name", "trt", "jetpack", "precision"), [
    ("desktop-gpu", "11", None, "fp32"),
    ("jetson-orin-nano", "10.3", "6.2", "fp16"),
    ("jetson-agx-orin", "10.3", "6.2", "fp16"),
    ("jetson-xavier-nx", "8.5", "5.1", "fp16"),
])
def test_gpu_profiles_pin_tensorrt_and_jetpack(name, trt, jetpack, precision):
    p = load_profile(name)
    assert (p.trt_version, p.jetpack, p.precision, p.backends[0]) == (trt, jetpack, precision, "trt")


def test_alias_jetson_is_orin_nano():
    assert ALIASES["jetson"] == "jetson-orin-nano"
    assert load_profile("jetson") == load_profile("jetson-orin-nano")


def test_unknown_key_names_the_key_and_allowed_keys():
    with pytest.raises(ProfileError, match=r"unknown key 'thread'.*'threads'"):
        validate_profile({**BASE, "thread": 2})


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("family", "raspberry", r"one of \['x86', 'desktop-gpu', 'jetson', 'native'\]"),
    ("precision", "int4", r"one of \['fp32', 'fp16', 'int8'\]"),
    ("backends", ["ort-cpu", "openvino"], r"'trt', 'ort-cuda', 'ort-cpu'"),
    ("backends", ["ort-cpu", "ort-cpu"], "distinct"),
    ("backends", [], "non-empty"),
    ("threads", 0, "integer >= 1"),
    ("threads", True, "integer"),
    ("threads", 1.5, "integer"),
    ("control_rate_hz", -5, "> 0"),
    ("latency_budget_us", float("nan"), "finite number"),
    ("rt_priority", 120, "<= 99"),
    ("cpu_affinity", [-1], "CPU indices"),
    ("parity_discrete_mismatch", 2, "between 0 and 1"),
])
def test_bad_value_names_key_value_and_allowed_values(key, value, allowed):
    with pytest.raises(ProfileError, match=rf"bad value .* for '{key}': expected .*{allowed}"):
        validate_profile({**BASE, key: value})


def test_missing_required_key():
    data = dict(BASE)
    del data["backends"]
    with pytest.raises(ProfileError, match="missing required key 'backends'"):
        validate_profile(data)


def test_unquoted_yaml_version_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("family: desktop-gpu\nbackends: [trt, ort-cpu]\nprecision: fp32\nthreads: 1\n"
                    "control_rate_hz: 50\nlatency_budget_us: 1000\ntrt_version: 10.10\n")
    with pytest.raises(ProfileError, match=r"'trt_version'.*quoted string"):
        load_profile(path)


@pytest.mark.parametrize(("extra", "message"), [
    ({"backends": ["trt", "ort-cpu"], "trt_version": "10.3"}, "CPU-only"),
    ({"family": "desktop-gpu", "backends": ["trt"]}, "'trt_version' is not set"),
    ({"family": "jetson"}, "needs 'jetpack'"),
    ({"power_mode": "MAXN"}, "'power_mode' applies to family 'jetson' only"),
    ({"control_rate_hz": 1000, "latency_budget_us": 2000}, "exceeds the control period"),
])
def test_inconsistent_combinations_are_refused(extra, message):
    with pytest.raises(ProfileError, match=message):
        validate_profile({**BASE, **extra})


def test_optional_keys_default_as_documented():
    p = validate_profile(BASE)
    assert isinstance(p, TargetProfile)
    assert (p.parity_atol, p.trt_version, p.cpu_affinity, p.effective_atol) == (1e-5, None, None, 1e-5)
    assert validate_profile({**BASE, "precision": "fp16"}).effective_atol == p.parity_atol_fp16


def test_unknown_profile_name_lists_known_ones():
    with pytest.raises(ProfileError, match=r"unknown target profile 'jetson-nano-2gb'.*jetson-orin-nano"):
        load_profile("jetson-nano-2gb")


def test_profiles_dir_and_name_must_match_file(tmp_path: Path):
    (tmp_path / "mine.yaml").write_text("name: other\n" + "".join(f"{k}: {v}\n" for k, v in BASE.items() if k != "name"))
    with pytest.raises(ProfileError, match="'name' is 'other' but the file is mine.yaml"):
        load_profile("mine", profiles_dir=tmp_path)


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("family: [x86\n")
    with pytest.raises(ProfileError, match="bad.yaml: not valid YAML"):
        load_profile(path)

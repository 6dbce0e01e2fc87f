"""Backend ``c``: chosen by a profile, built once into the native cache (outside the bundle), reference-checked like the others;
``deploy`` bundles ``policy.c``/``policy.h`` and checks a microcontroller profile's budgets."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgerl.commands.deploy import deploy
from edgerl.runtime import Policy
from edgerl.runtime.backends.c import find_compiler, native_cache_dir
from edgerl.runtime.errors import BundleError, ObservationError, ProfileError
from tests.export.c_policies import make_policy
from tests.runtime.conftest import contract

needs_cc = pytest.mark.skipif(find_compiler() is None, reason="no C compiler (cc/gcc/clang) on PATH")
REPO = Path(__file__).resolve().parents[2]


def _profile(tmp: Path, name: str, base: str, **changes: object) -> Path:
    data = yaml.safe_load((REPO / "profiles" / "targets" / f"{base}.yaml").read_text())
    data.update(name=name, **changes)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def c_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("c-bundle")
    ckpt = make_policy("sac", "dense", tmp)
    target = _profile(tmp, "x86-c", "x86-cpu", backends=["c", "ort-cpu"])
    deploy(ckpt, str(target), tmp / "bundle", recorded_steps=0)
    return tmp / "bundle"


@needs_cc
def test_profile_picks_c_and_it_matches_ort(c_bundle: Path) -> None:
    with Policy.load(c_bundle) as pol, Policy.load(c_bundle, backends=["ort-cpu"]) as ref:
        assert pol.backend_name == "c" and ref.backend_name == "ort-cpu"
        obs = np.random.default_rng(1).normal(0.0, 2.0, size=(500, 11))
        got, want = pol.act_batch(obs), ref.act_batch(obs)
        diff = np.abs(got.astype(np.float64) - want)
        assert got.dtype == np.float32 and np.isfinite(diff).all() and diff.max() <= 1e-5
        single = pol.act(obs[3])
        assert single.shape == (3,) and np.array_equal(single, got[3])
        bad = obs[0].copy()
        bad[4] = np.nan
        with pytest.raises(ObservationError, match="index \\[4\\]"):
            pol.act(bad)
    assert not list((c_bundle / "cache").glob("*.so")), "loadable code must never land inside the bundle"
    libs = sorted(native_cache_dir().glob("policy-c-*.so"))
    assert len(libs) == 1
    meta = json.loads(libs[0].with_suffix(".json").read_text())
    assert meta["flags"] == ["-std=c99", "-O3", "-fPIC", "-shared"] and meta["compiler_id"]
    mtime = libs[0].stat().st_mtime_ns
    Policy.load(c_bundle).close()  # cached: not rebuilt
    assert libs[0].stat().st_mtime_ns == mtime
    tampered = libs[0].with_suffix(".tmp")  # replaced, not rewritten in place: this process has it mapped
    tampered.write_bytes(libs[0].read_bytes() + b"\0")
    tampered.replace(libs[0])  # a changed library is rebuilt, never loaded
    Policy.load(c_bundle).close()
    assert json.loads(libs[0].with_suffix(".json").read_text())["library_sha256"] == \
        hashlib.sha256(libs[0].read_bytes()).hexdigest()


@needs_cc
def test_manifest_covers_c_sources(c_bundle: Path, tmp_path: Path) -> None:
    import shutil

    manifest = json.loads((c_bundle / "manifest.json").read_text())
    assert {"policy.c", "policy.h"} <= set(manifest["files"])
    copy = tmp_path / "bundle"
    shutil.copytree(c_bundle, copy)
    src = copy / "policy.c"
    src.write_text(src.read_text().replace("return EDGERL_OK;", "return 0;", 1))
    with pytest.raises(BundleError, match="policy.c: was modified"):
        Policy.load(copy)


def test_bundle_without_c_sources_falls_back_to_ort(make_bundle) -> None:
    from edgerl.runtime.profile import load_profile

    profile = {**load_profile("x86-cpu").to_dict(), "backends": ["c", "ort-cpu"]}
    with Policy.load(make_bundle(profile=profile, contract=contract())) as pol:
        reason = pol.skipped_backends["c"]
        assert pol.backend_name == "ort-cpu"
        assert "policy.c" in reason if find_compiler() is not None else "no C compiler" in reason


def test_mcu_budget_is_checked_at_deploy(tmp_path: Path) -> None:
    ckpt = make_policy("sac", "dense", tmp_path)
    tight = _profile(tmp_path, "mcu-tight", "mcu-cortex-m4", flash_budget_kb=2)
    with pytest.raises(ProfileError, match="needs .* KiB of flash .* allows 2 KiB") as e:
        deploy(ckpt, str(tight), tmp_path / "bundle", recorded_steps=0)
    assert "\n" not in str(e.value) and not (tmp_path / "bundle").exists()


@pytest.mark.slow
def test_mcu_deploy_writes_c_bundle(tmp_path: Path) -> None:
    ckpt = make_policy("sac", "dense", tmp_path)
    summary = deploy(ckpt, "mcu-cortex-m4", tmp_path / "bundle", recorded_steps=0)
    fp = summary["native"]["footprint"]
    assert 0 < fp["flash"] <= 128 * 1024 and 0 < fp["ram"] <= 16 * 1024
    assert {"policy.c", "policy.h", "main.cpp"} <= set(summary["files"])


@pytest.mark.parametrize(("changes", "match"), [
    ({"family": "native", "backends": ["c", "ort-cpu"]}, "family 'native' runs the C policy only"),
    ({"flash_budget_kb": 64}, "size the C policy: add 'c' to 'backends'"),
    ({"backends": ["c"], "c_cross": "arm-none-eabi-gcc"}, "bad value .* for 'c_cross'"),
    ({"backends": ["c"], "ram_budget_kb": -1}, "bad value -1 for 'ram_budget_kb'"),
])
def test_profile_c_keys_are_validated(changes: dict, match: str) -> None:
    from edgerl.runtime.profile import validate_profile

    base = {"name": "t", "family": "x86", "backends": ["ort-cpu"], "precision": "fp32", "threads": 1,
            "control_rate_hz": 50, "latency_budget_us": 1000}
    with pytest.raises(ProfileError, match=match):
        validate_profile({**base, **changes})
    assert validate_profile({**base, "backends": ["c", "ort-cpu"]}).backends == ("c", "ort-cpu")


@pytest.mark.slow
@needs_cc
def test_discrete_policy_on_c_backend(tmp_path: Path) -> None:
    """DQN-MLP through Policy on backend c: int actions equal to ort-cpu's (int32 edgerl_action_t)."""
    ckpt = make_policy("dqn-mlp", "dense", tmp_path)
    target = _profile(tmp_path, "x86-c", "x86-cpu", backends=["c", "ort-cpu"])
    deploy(ckpt, str(target), tmp_path / "bundle", recorded_steps=0)
    with Policy.load(tmp_path / "bundle") as pol, Policy.load(tmp_path / "bundle", backends=["ort-cpu"]) as ref:
        assert pol.backend_name == "c"
        obs = np.random.default_rng(2).normal(1.0, 2.0, size=(400, 4))
        got, want = pol.act_batch(obs), ref.act_batch(obs)
        assert got.dtype == want.dtype == np.int64 and (got == want).mean() > 0.99 and len(set(got)) == 2
        assert isinstance(pol.act(obs[0]), int) and pol.act(obs[0]) == want[0]


@needs_cc
def test_imported_policy_deploys_to_a_microcontroller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An rsl_rl policy with its clip/scale/offset chain goes to the MCU profile as C, sized against
    its budgets, and the runtime's c backend passes the bundle's reference check and equals ORT."""
    from tests.export.test_c_export import _imported

    monkeypatch.setenv("EDGERL_NATIVE_CACHE", str(tmp_path / "cache"))
    ckpt = _imported("rsl_rl-chain", tmp_path)
    summary = deploy(ckpt, "mcu-cortex-m4", tmp_path / "mcu", recorded_steps=0)
    assert {"policy.c", "policy.h"} <= set(summary["files"]) and summary["native"]["parity_worst"] <= 1e-5
    target = _profile(tmp_path, "x86-c", "x86-cpu", backends=["c", "ort-cpu"])
    deploy(ckpt, str(target), tmp_path / "bundle", recorded_steps=0)
    with Policy.load(tmp_path / "bundle") as pol, Policy.load(tmp_path / "bundle", backends=["ort-cpu"]) as ref:
        assert pol.backend_name == "c"
        obs = np.random.default_rng(2).normal(0.0, 3.0, size=(300, 6))
        diff = np.abs(pol.act_batch(obs).astype(np.float64) - ref.act_batch(obs))
        assert np.isfinite(diff).all() and diff.max() <= 1e-5


@needs_cc
def test_recurrent_policy_runs_on_the_c_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An rsl_rl LSTM deployed with backends [c, ort-cpu]: the c backend carries the state like ORT
    (reference check with its episode resets, act, reset), and equals ORT step by step."""
    from edgerl.checkpoint import save_checkpoint
    from edgerl.interop import import_policy
    from tests.interop.test_cli_import import _rsl_rl_recurrent

    monkeypatch.setenv("EDGERL_NATIVE_CACHE", str(tmp_path / "cache"))
    payload, _ = import_policy(_rsl_rl_recurrent(tmp_path), "rsl_rl")
    save_checkpoint(tmp_path / "p.pt", payload)
    deploy(tmp_path / "p.pt", str(_profile(tmp_path, "x86-c", "x86-cpu", backends=["c", "ort-cpu"])),
           tmp_path / "bundle", recorded_steps=0)
    with Policy.load(tmp_path / "bundle") as pol, Policy.load(tmp_path / "bundle", backends=["ort-cpu"]) as ref:
        assert pol.backend_name == "c" and pol.recurrent and ref.recurrent
        obs = np.random.default_rng(3).normal(0.0, 2.0, size=(200, 3))
        got, want = [], []
        for t, o in enumerate(obs):
            if t % 50 == 0:
                pol.reset()
                ref.reset()
            got.append(pol.act(o))
            want.append(ref.act(o))
        diff = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
        assert np.isfinite(diff).all() and diff.max() <= 1e-5
        pol.reset()
        assert np.array_equal(pol.act(obs[0]), got[0])  # reset: the same first step again


@needs_cc
def test_inconsistent_recurrent_library_is_refused(tmp_path: Path) -> None:
    from edgerl.runtime.backends.c import NativePolicy, compile_c

    src = tmp_path / "lib.c"
    src.write_text("#include <stdint.h>\n"
                   "const int32_t edgerl_obs_dim = 3, edgerl_act_dim = 1, edgerl_discrete = 0;\n"
                   "const uint32_t edgerl_scratch_size = 64;\n"
                   "const char edgerl_source_sha256[65] = \"x\";\n"
                   "const int32_t edgerl_state_size = 7, edgerl_state_layers = 2;\n"  # 7 floats over 2 LSTM layers
                   "const char edgerl_state_kind[8] = \"lstm\";\n"
                   "int edgerl_step(void) { return 0; }\n")
    compile_c([src], tmp_path / "lib.so", ("-std=c99", "-fPIC", "-shared"))
    with pytest.raises(BundleError, match="inconsistent recurrent state \\('lstm', 7 floats over 2 layers\\)"):
        NativePolicy(tmp_path / "lib.so")

"""Property-based fuzzing of the bundle verifier, the contract parser and ``Policy.act`` (issue 12).

Every generated input must end in the expected edgerl error or a valid result: never another
exception (a traceback), a hang (per-example deadline) or a non-finite / out-of-bounds action.
The default run is a few seconds; ``tools/fuzz.py`` runs the same properties with many more
examples (``EDGERL_FUZZ_SCALE`` multiplies every ``max_examples``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pytest
from conftest import HIGH, LOW, MLP, contract, ref_obs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgerl.runtime.bundle import verify_bundle, write_bundle
from edgerl.runtime.contract import MAX_ABS_BOUND, parse_contract
from edgerl.runtime.errors import ActionError, BundleError, ObservationError
from edgerl.runtime.policy import Policy
from edgerl.runtime.profile import load_profile

SCALE = float(os.environ.get("EDGERL_FUZZ_SCALE", "1"))
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # hypothesis' casts


def fuzz_settings(examples: int) -> settings:
    """``examples`` in the default run (times EDGERL_FUZZ_SCALE); a generous deadline catches hangs."""
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=timedelta(seconds=5), database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large], derandomize=SCALE <= 1)


# ---------------------------------------------------------------------------- JSON values
json_scalars = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8)
                | st.sampled_from(["float32", "float64", "int64", "uint8", "complex64", "O", "obs", "action",
                                   "edgerl-contract", "edgerl-bundle", "action_rescale"]))
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=6), c,
                                                                                              max_size=4),
                           max_leaves=12)


def _set_path(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    if isinstance(doc, dict):
        return {**doc, path[0]: _set_path(doc.get(path[0]), path[1:], value)}
    return {path[0]: _set_path(None, path[1:], value)}


CONTRACT_KEYS = [["format"], ["version"], ["observation"], ["action"], ["baked_in"], ["observation", "shape"],
                 ["observation", "dtype"], ["observation", "name"], ["action", "shape"], ["action", "dtype"],
                 ["action", "discrete"], ["action", "n"], ["action", "low"], ["action", "high"], ["action", "name"]]


@st.composite
def contracts(draw: st.DrawFn) -> Any:
    """A valid contract (continuous or discrete) with a few fields replaced by arbitrary JSON."""
    base = draw(st.sampled_from([contract(), contract(act_shape=(), discrete=True, n=4, low=None, high=None),
                                 contract(low=None, high=None)]))
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(CONTRACT_KEYS))
        value = draw(json_values | st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=3)
                     | st.lists(st.integers(-3, 12), max_size=3))
        doc = _set_path(doc, key, value)
    return draw(st.just(doc) | json_values) if draw(st.integers(0, 9)) == 0 else doc


@fuzz_settings(600)
@given(doc=contracts())
def test_contract_parser_accepts_only_sane_contracts(doc):
    try:
        c = parse_contract(doc)
    except BundleError as e:
        assert "\n" not in str(e)
        return
    assert all(isinstance(d, int) and d > 0 for d in (*c.obs_shape, *c.act_shape))
    if c.discrete:
        assert c.act_dtype.kind in "iu" and c.act_shape == () and isinstance(c.n, int) and c.n >= 1
        return
    assert c.act_dtype.kind == "f"
    for b in (c.act_low, c.act_high):
        if b is not None:
            assert b.shape == c.act_shape and not np.isnan(b).any()
            assert np.all((np.abs(b) <= MAX_ABS_BOUND) | np.isinf(b))
    if c.act_low is not None and c.act_high is not None:
        assert np.all(c.act_low < c.act_high)
    assert isinstance(doc.get("baked_in", []), list)
    if "action_rescale" in doc.get("baked_in", []):
        assert np.isfinite(c.act_low).all() and np.isfinite(c.act_high).all()


# ---------------------------------------------------------------------------- bundle verifier
@pytest.fixture(scope="module")
def fuzz_bundle(_master_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "bundle"
    shutil.copytree(_master_bundle, out)
    return out


MANIFEST_KEYS = [["format"], ["version"], ["files"], ["profile"], ["files", "policy.onnx"], ["files", "contract.json"],
                 ["files", "../x"], ["files", "cache/e"], ["files", "runtime/edgerl_runtime/__pycache__/a.pyc"],
                 ["files", "/etc/passwd"], ["files", "manifest.sig"], ["files", "a//b"]]


@contextlib.contextmanager
def _restored(path: Path):
    data = path.read_bytes()
    try:
        yield
    finally:
        path.write_bytes(data)


@fuzz_settings(200)
@given(edits=st.lists(st.tuples(st.sampled_from(MANIFEST_KEYS), json_values), max_size=3),
       raw=st.one_of(st.none(), st.binary(max_size=64)))
def test_verifier_on_arbitrary_manifests(fuzz_bundle, edits, raw):
    manifest = fuzz_bundle / "manifest.json"
    with _restored(manifest):
        doc = json.loads(manifest.read_text())
        for key, value in edits:
            doc = _set_path(doc, key, value)
        manifest.write_bytes(raw if raw is not None else json.dumps(doc).encode())
        original = json.loads(_restored_text(fuzz_bundle))
        unchanged = raw is None and json.dumps(doc, sort_keys=True) == json.dumps(original, sort_keys=True)  # True != 1
        try:
            m = verify_bundle(fuzz_bundle, [])
        except BundleError as e:
            assert "\n" not in str(e)
            assert not unchanged, e
            return
        assert unchanged or set(m["files"]) == set(original["files"])


_ORIGINAL_MANIFESTS: dict[Path, str] = {}


def _restored_text(bundle: Path) -> str:
    return _ORIGINAL_MANIFESTS[bundle]


@pytest.fixture(autouse=True)
def _remember_manifest(request):
    if "fuzz_bundle" in request.fixturenames:
        b = request.getfixturevalue("fuzz_bundle")
        _ORIGINAL_MANIFESTS.setdefault(b, (b / "manifest.json").read_text())
    yield


SEGMENTS = ["__pycache__", ".venv", "cache", "logs", "runtime", "edgerl_runtime", "backends", "x.pth", "a.pyc",
            "onnxruntime", "sitecustomize.py", "notes.txt", "engine.bin", "run.log", "__init__.py", "lib", "x.so",
            "policy.onnx", "a.json"]
CODE_LIKE = (".py", ".pyc", ".pth", ".so")


def _allowed(rel: PurePosixPath, kind: str) -> bool:
    """The oracle: only data files and folders strictly inside cache/ or logs/ may be added."""
    if kind == "link" or rel.parts[0] not in ("cache", "logs"):
        return False
    if len(rel.parts) == 1:
        return kind == "dir"
    return not any(p == "__pycache__" or p.endswith(CODE_LIKE) or p.startswith("__init__.") for p in rel.parts[1:])


@fuzz_settings(100)
@given(ops=st.lists(st.tuples(st.sampled_from(["file", "dir", "link"]),
                              st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3)), min_size=1, max_size=3))
def test_verifier_refuses_anything_planted(fuzz_bundle, ops, tmp_path_factory):
    created: list[tuple[Path, str]] = []
    try:
        for kind, segments in ops:
            path = fuzz_bundle.joinpath(*segments)
            parent = path.parent
            missing = []
            while not parent.exists() and not parent.is_symlink():
                missing.append(parent)
                parent = parent.parent
            if not parent.is_dir() or parent.is_symlink() or path.exists() or path.is_symlink():
                continue  # cannot create below a file or a link, or over something existing
            for d in reversed(missing):
                d.mkdir()
                created.append((d, "dir"))
            if kind == "file":
                path.write_text("import os\n")
            elif kind == "dir":
                path.mkdir()
            else:
                path.symlink_to(fuzz_bundle.parent)
            created.append((path, kind))
        expected_ok = all(_allowed(PurePosixPath(p.relative_to(fuzz_bundle).as_posix()), k) for p, k in created)
        try:
            verify_bundle(fuzz_bundle, [])
        except BundleError as e:
            assert "\n" not in str(e)
            assert not expected_ok, f"refused an allowed change {created}: {e}"
            return
        assert expected_ok, f"accepted {created}"
    finally:
        for p, kind in reversed(created):
            if kind == "dir" and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif p.is_symlink() or p.exists():
                p.unlink()


# ---------------------------------------------------------------------------- Policy.act
@pytest.fixture(scope="module")
def policies(_master_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    """The default bundle, and one whose network leaves the bounds (no squash, large gain)."""
    root = tmp_path_factory.mktemp("wild")
    wild, obs = MLP(squash=False, gain=50.0), ref_obs()
    write_bundle(root / "bundle", wild.save(root / "wild.onnx"), contract(), obs,
                 np.clip(wild.numpy(obs), LOW, HIGH).astype(np.float32), load_profile("x86-cpu"))
    with Policy.load(_master_bundle) as tame, Policy.load(root / "bundle") as loud:
        yield tame, loud


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)
observations = st.one_of(
    hnp.arrays(st.sampled_from([np.float64, np.float32, np.float16]), st.just((11,)),
               elements=st.floats(-6e4, 6e4, width=16) | finite_or_not.filter(lambda v: abs(v) > 1e300 or v != v)),
    hnp.arrays(st.sampled_from([np.float64, np.float32]), st.just((11,)), elements=st.floats(-1e3, 1e3, width=32)),
    hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(min_dims=0, max_dims=3, max_side=12)),
    st.lists(finite_or_not | st.integers(-(2 ** 70), 2 ** 70), min_size=11, max_size=11),
    json_values,
    st.builds(object),
)


def _check_action(a: Any) -> None:
    assert isinstance(a, np.ndarray) and a.shape == (3,) and a.dtype == np.float32
    assert np.isfinite(a).all()
    x = a.astype(np.float64)
    assert np.all(x >= LOW) and np.all(x <= HIGH)


@fuzz_settings(1000)
@given(obs=observations, which=st.sampled_from([0, 1]))
def test_act_returns_a_bounded_finite_action_or_an_observation_error(policies, obs, which):
    p = policies[which]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the documented "invalid value" warning for inf
        try:
            a = p.act(obs)
        except ObservationError as e:
            assert "\n" not in str(e)
            return
        except ActionError as e:  # an overflowing but finite observation can drive the net to NaN
            assert "non-finite" in str(e)
            return
    _check_action(a)


@fuzz_settings(200)
@given(batch=st.one_of(
    hnp.arrays(st.sampled_from([np.float64, np.float32]), st.tuples(st.integers(0, 9), st.just(11)),
               elements=st.floats(-1e4, 1e4, width=32) | finite_or_not),
    hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(min_dims=0, max_dims=3, max_side=12)),
    st.lists(st.lists(finite_or_not, min_size=10, max_size=12), max_size=4),
), which=st.sampled_from([0, 1]))
def test_act_batch_never_returns_a_bad_action(policies, batch, which):
    p = policies[which]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            acts = p.act_batch(batch)
        except (ObservationError, ActionError) as e:
            assert "\n" not in str(e)
            return
    assert acts.ndim == 2 and acts.shape[1:] == (3,) and acts.dtype == np.float32
    for a in acts:
        _check_action(a)

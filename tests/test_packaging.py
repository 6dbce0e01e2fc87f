"""A wheel install carries profiles/ and deploy/ and finds them (issue 12, item 9)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgerl.runtime.resources import shipped_dir

REPO = Path(__file__).resolve().parent.parent


def test_checkout_finds_the_top_level_folders():
    assert shipped_dir("profiles") == REPO / "profiles"
    assert shipped_dir("deploy") == REPO / "deploy"
    with pytest.raises(ValueError, match="kind must be one of"):
        shipped_dir("secrets")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a copy of the source (the build writes build/ and *.egg-info)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("edgerl", "profiles", "deploy"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                        str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("edgerl-*.whl")
    return whl


def test_wheel_lists_every_profile_and_device_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("profiles", "deploy"):
        for f in (REPO / folder).rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts:
                assert f"edgerl/_data/{f.relative_to(REPO).as_posix()}" in names, f
    assert "edgerl/runtime/resources.py" in names and "edgerl/py.typed" in names
    assert not any(n.startswith(("profiles/", "deploy/")) for n in names)  # no stray top-level packages


def test_installed_wheel_resolves_profiles_recipes_and_deploys(wheel, tmp_path):
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                        str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    sys.path.insert(0, str(REPO / "tests" / "runtime"))
    try:
        from conftest import MLP, contract, ref_obs  # the runtime tests' tiny ONNX policy
    finally:
        sys.path.pop(0)
    m, obs = MLP(), ref_obs(8)
    m.save(tmp_path / "p.onnx")
    np.savez(tmp_path / "ref.npz", obs=obs, action=m.numpy(obs))
    (tmp_path / "c.json").write_text(__import__("json").dumps(contract()))
    code = (
        "import json, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import numpy as np, edgerl\n"
        "from edgerl.config import default_recipe\n"
        "from edgerl.runtime.bundle import verify_bundle, write_bundle\n"
        "from edgerl.runtime.profile import load_profile\n"
        "assert edgerl.__file__.startswith(sys.argv[1]), edgerl.__file__\n"
        "p = load_profile('jetson')\n"
        "assert default_recipe('sac').is_file(), default_recipe('sac')\n"
        "z = np.load('ref.npz')\n"
        "write_bundle('bundle', 'p.onnx', json.load(open('c.json')), z['obs'], z['action'], p)\n"
        "m = verify_bundle('bundle')\n"
        "print(p.name, default_recipe('sac').relative_to(sys.argv[1]), sorted(m['files'])[:3])\n"
    )
    r = subprocess.run([sys.executable, "-I", "-B", "-c", code, str(site)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("jetson-orin-nano edgerl/_data/profiles/recipes/sac.yaml")
    assert (tmp_path / "bundle" / "build_engine.sh").is_file()  # the jetson device files came from the wheel

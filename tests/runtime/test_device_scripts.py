"""The device scripts never put a folder of the bundle on the import path (issue 12, item 1)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
FAMILIES = sorted(p.parent.name for p in DEPLOY.glob("*/install.sh"))
"""Families that run the Python runtime (``native`` is C/C++ only: no venv, no service)."""
SCRIPTS = sorted(DEPLOY.glob("*/*.sh"))


def _code_lines(path: Path) -> list[str]:
    lines = (ln.split(" #", 1)[0] for ln in path.read_text().splitlines())  # drop trailing comments
    return [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_python_call_is_isolated(path):
    for ln in _code_lines(path):
        if ln.lstrip().startswith("echo "):
            continue
        assert "PYTHONPATH" not in ln, ln
        assert ".venv" not in ln, ln  # the virtualenv lives outside the bundle
        rest = ln.replace('"$VENV/bin/python" -I -B', "ISOLATED").replace('"${PY[@]}"', "ISOLATED")
        rest = re.sub(r'^PYTHON="\$\{PYTHON:-[^}]*\}"', "", rest.replace('"$PYTHON" -m venv', "MAKES_VENV"))
        assert not re.search(r"(?<![-\w])python3?\b(?!-)|/bin/python", rest), f"{path}: python call without -I -B: {ln}"


@pytest.mark.parametrize("family", FAMILIES)
def test_install_keeps_the_venv_outside_and_lets_the_installed_runtime_verify(family):
    text = (DEPLOY / family / "install.sh").read_text()
    assert 'VENV="${EDGERL_VENV:-$(dirname "$BUNDLE")/edgerl-venv}"' in text
    assert "lies inside the bundle" in text  # EDGERL_VENV inside the bundle is refused
    assert '"${PY[@]}" -m edgerl_runtime install "$BUNDLE"' in text  # update: installed runtime verifies first
    assert text.index("-m edgerl_runtime install") < text.index('-m edgerl_runtime check "$BUNDLE"')


@pytest.mark.parametrize("family", FAMILIES)
def test_systemd_unit_runs_the_installed_runtime_outside_the_bundle(family):
    unit = dict(ln.split("=", 1) for ln in _code_lines(DEPLOY / family / "edgerl-policy.service") if "=" in ln
                and not ln.startswith("["))
    assert unit["WorkingDirectory"] == "/"
    assert unit["ExecStart"] == "@VENV@/bin/python -I -B -m edgerl_runtime run @BUNDLE@"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scripts_parse(path):
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_install_refuses_a_venv_inside_the_bundle(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEPLOY / "x86", bundle)
    r = subprocess.run(["bash", str(bundle / "install.sh")], env={"EDGERL_VENV": str(bundle / ".venv"), "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "lies inside the bundle" in r.stderr
    assert not (bundle / ".venv").exists()

"""The runtime as the robot sees it: no torch, copied into a bundle, driven from the command line."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgerl.runtime.backends import BACKENDS
from edgerl.runtime.bundle import verify_bundle

RUNTIME_SRC = Path(__file__).resolve().parents[2] / "edgerl" / "runtime"


def run_py(args: list[str], cwd: Path, pythonpath: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    # as on a device: no PYTHONPATH leaking from the test run, bytecode written next to the sources
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_import_load_and_act_never_import_torch(bundle, tmp_path):
    code = (
        "import sys, numpy as np\n"
        "import edgerl.runtime as rt\n"
        "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules\n"
        "p = rt.Policy.load(sys.argv[1])\n"
        "a = p.act(np.zeros(11)); p.act_batch(np.zeros((4, 11)))\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)\n"
        "print('ok', a.shape)\n"
    )
    r = run_py(["-c", code, str(bundle)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok (3,)"


def test_bundled_copy_runs_standalone(bundle, tmp_path):
    code = (
        "import sys, numpy as np\n"
        "import edgerl_runtime as rt\n"
        "p = rt.Policy.load(sys.argv[1])\n"  # verifies the manifest after __pycache__ was written
        "a = p.act(np.zeros(11))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('edgerl', 'torch'))\n"
        "assert not bad, bad\n"
        "print(rt.__file__)\n"
    )
    r = run_py(["-c", code, str(bundle)], cwd=tmp_path, pythonpath=bundle / "runtime")
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == bundle / "runtime" / "edgerl_runtime" / "__init__.py"
    assert (bundle / "runtime" / "edgerl_runtime" / "__pycache__").is_dir()
    verify_bundle(bundle)


def test_cli_check_reports_reference_and_latency(bundle, tmp_path):
    r = run_py(["-m", "edgerl_runtime", "check", str(bundle), "--json", "-n", "200"], cwd=tmp_path,
               pythonpath=bundle / "runtime")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["profile"] == "x86-cpu" and report["backend"].startswith("ort-cpu")
    assert report["verified_files"] == len(verify_bundle(bundle)["files"])
    assert report["latency"]["count"] == 200 and report["latency"]["p99_us"] > 0
    human = run_py(["-m", "edgerl_runtime", "check", str(bundle), "-n", "50"], cwd=tmp_path, pythonpath=bundle / "runtime")
    assert "reference  32 observations match (atol 1e-05)" in human.stdout
    assert "result     OK" in human.stdout


def test_cli_refuses_a_tampered_bundle(bundle, tmp_path):
    (bundle / "policy.onnx").write_bytes((bundle / "policy.onnx").read_bytes() + b"\0")
    for cmd in ("verify", "check"):
        r = run_py(["-m", "edgerl_runtime", cmd, str(bundle)], cwd=tmp_path, pythonpath=bundle / "runtime")
        assert r.returncode == 1
        assert "error:" in r.stderr and "policy.onnx: was modified after deployment" in r.stderr


def test_cli_run_drives_the_loop_with_user_io(bundle, tmp_path):
    (tmp_path / "robot_io.py").write_text(
        "import numpy as np\n"
        "def make_io(policy):\n"
        "    sent = []\n"
        "    def read_obs():\n"
        "        return np.zeros(policy.contract.obs_shape)\n"
        "    def write_action(a):\n"
        "        sent.append(a)\n"
        "        assert a.shape == (3,)\n"
        "    return read_obs, write_action\n"
    )
    r = run_py(["-m", "edgerl_runtime", "run", str(bundle), "--io", str(tmp_path / "robot_io.py") + ":make_io",
                "--max-steps", "20", "--rate", "500"], cwd=tmp_path, pythonpath=bundle / "runtime")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["loop"]["steps"] == 20 and out["loop"]["actions"] + out["loop"]["fallbacks"] == 20
    assert out["policy"]["count"] == 20
    assert out["loop"]["duration_s"] >= 19 / 500


def test_install_helper_writes_pth(bundle, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    r = run_py([str(bundle / "runtime" / "install_runtime.py"), "--site-packages", str(site)], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (site / "edgerl_runtime.pth").read_text().strip() == str(bundle / "runtime")
    r = run_py(["-c", f"import site; site.addsitedir({str(site)!r}); import edgerl_runtime as m; print(m.__file__)"],
               cwd=tmp_path)
    assert r.returncode == 0 and str(bundle / "runtime") in r.stdout


@pytest.mark.skipif(BACKENDS["trt"].available()[0], reason="TensorRT is installed here")
def test_build_engine_entry_point_explains_missing_tensorrt(bundle, tmp_path):
    r = run_py(["-m", "edgerl_runtime.build_engine", str(bundle)], cwd=tmp_path, pythonpath=bundle / "runtime")
    assert r.returncode == 1 and "TensorRT not installed" in r.stderr and "python3-libnvinfer" in r.stderr


def _isinstance_union(tree: ast.AST) -> list[int]:
    return [n.lineno for n in ast.walk(tree)
            if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "isinstance" and len(n.args) == 2
            and isinstance(n.args[1], ast.BinOp)]


@pytest.mark.parametrize("path", sorted(RUNTIME_SRC.rglob("*.py")), ids=lambda p: p.relative_to(RUNTIME_SRC).as_posix())
def test_runtime_source_is_python38_compatible_and_relative(path):
    """JetPack 5 (Xavier NX) ships Python 3.8 with its TensorRT bindings; the bundle must run there."""
    src = path.read_text()
    tree = ast.parse(src, feature_version=(3, 8))
    assert "from __future__ import annotations" in src or not src.strip() or path.name == "__main__.py"
    assert _isinstance_union(tree) == [], "isinstance(x, A | B) needs Python 3.10"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            assert node.module.split(".")[0] not in ("edgerl", "torch"), f"absolute import of {node.module}"
        if isinstance(node, ast.Import):
            assert not any(a.name.split(".")[0] in ("edgerl", "torch") for a in node.names)

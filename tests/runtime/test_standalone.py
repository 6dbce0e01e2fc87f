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
from edgerl.runtime.errors import BundleError

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


_RUN_INSTALLED = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
                  "runpy.run_module('edgerl_runtime', run_name='__main__', alter_sys=True)")


def installed(bundle: Path, tmp_path: Path) -> Path:
    """Install the bundle's runtime into a fresh site folder, as install.sh does (python -I -B)."""
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-I", "-B", str(bundle / "runtime" / "install_runtime.py"),
                        "--site-packages", str(site)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return site


@pytest.fixture(scope="module")
def site(_master_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runtime installed from a bundle (shared: the installed copy is the same for every bundle)."""
    return installed(_master_bundle, tmp_path_factory.mktemp("installed"))


def run_installed(site: Path, args: list[str], cwd: Path, env: dict[str, str] | None = None,
                  timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -I -B -m edgerl_runtime ARGS`` with ``site`` standing in for the venv's site-packages."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "EDGERL_"))}
    return subprocess.run([sys.executable, "-I", "-B", "-c", _RUN_INSTALLED, str(site), *args], cwd=cwd,
                          env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def test_installed_runtime_runs_standalone(bundle, tmp_path, site):
    code = (
        "import sys, numpy as np\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "import edgerl_runtime as rt\n"
        "p = rt.Policy.load(sys.argv[1])\n"
        "a = p.act(np.zeros(11))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('edgerl', 'torch'))\n"
        "assert not bad, bad\n"
        "print(rt.__file__)\n"
    )
    r = subprocess.run([sys.executable, "-I", "-B", "-c", code, str(bundle), str(site)], cwd=bundle,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == site / "edgerl_runtime" / "__init__.py"  # not the bundle's copy
    assert not list(bundle.rglob("__pycache__")) and not list(site.rglob("__pycache__"))
    verify_bundle(bundle)


def test_install_copies_exactly_the_verified_runtime(bundle, tmp_path):
    site = installed(bundle, tmp_path)
    listed = {rel[len("runtime/edgerl_runtime/"):] for rel in verify_bundle(bundle)["files"]
              if rel.startswith("runtime/edgerl_runtime/")}
    got = {p.relative_to(site / "edgerl_runtime").as_posix() for p in (site / "edgerl_runtime").rglob("*") if p.is_file()}
    assert got == listed
    assert not (site / "edgerl_runtime.pth").exists()
    for rel in listed:
        assert (site / "edgerl_runtime" / rel).read_bytes() == (bundle / "runtime" / "edgerl_runtime" / rel).read_bytes()


def test_install_refuses_an_unverified_bundle_and_keeps_the_installed_runtime(bundle, tmp_path):
    site = installed(bundle, tmp_path)
    before = (site / "edgerl_runtime" / "policy.py").read_bytes()
    (bundle / "runtime" / "edgerl_runtime" / "policy.py").write_text("raise SystemExit('pwned')\n")
    r = run_installed(site, ["install", str(bundle), "--site-packages", str(site)], cwd=tmp_path)
    assert r.returncode == 1 and "policy.py: was modified after deployment" in r.stderr
    assert (site / "edgerl_runtime" / "policy.py").read_bytes() == before


def test_planted_bytecode_never_runs_and_is_refused(bundle, tmp_path, site):
    """Issue 12 probe 1: a planted __pycache__/*.pyc made `check` print result OK and ran its code."""
    mark = tmp_path / "pwned"
    pyc = bundle / "runtime" / "edgerl_runtime" / "__pycache__" / f"cli.{sys.implementation.cache_tag}.pyc"
    pyc.parent.mkdir()
    src = tmp_path / "evil.py"
    src.write_text(f"open({str(mark)!r}, 'w').write('ran')\n")
    import py_compile

    py_compile.compile(str(src), cfile=str(pyc))
    r = run_installed(site, ["check", str(bundle), "-n", "10"], cwd=bundle)  # cwd = the bundle, as systemd had it
    assert r.returncode == 1 and "__pycache__: is a folder that manifest.json does not list" in r.stderr
    assert "result     OK" not in r.stdout and not mark.exists()


def test_running_the_bundle_copy_in_place_is_caught_by_the_next_verify(bundle, tmp_path):
    # What the old device scripts did (bundle/runtime on the import path, bytecode on): the bytecode
    # it leaves is unverified code, so the next verification refuses the bundle and says why.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPATH"] = str(bundle / "runtime")
    subprocess.run([sys.executable, "-c", "import edgerl_runtime"], env=env, cwd=tmp_path, check=True, timeout=60)
    with pytest.raises(BundleError, match=r"__pycache__: .*Python bytecode.*python -I -B"):
        verify_bundle(bundle)


def test_cli_check_reports_reference_and_latency(bundle, tmp_path, site):
    r = run_installed(site, ["check", str(bundle), "--json", "-n", "200"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["profile"] == "x86-cpu" and report["backend"].startswith("ort-cpu")
    assert report["verified_files"] == len(verify_bundle(bundle)["files"]) and report["signed_by"] is None
    assert report["latency"]["count"] == 200 and report["latency"]["p99_us"] > 0
    human = run_installed(site, ["check", str(bundle), "-n", "50"], cwd=tmp_path)
    assert "reference  32 observations match (atol 1e-05)" in human.stdout
    assert "result     OK" in human.stdout


def test_cli_refuses_a_tampered_bundle(bundle, tmp_path, site):
    (bundle / "policy.onnx").write_bytes((bundle / "policy.onnx").read_bytes() + b"\0")
    for cmd in ("verify", "check"):
        r = run_installed(site, [cmd, str(bundle)], cwd=tmp_path)
        assert r.returncode == 1
        assert "error:" in r.stderr and "policy.onnx: was modified after deployment" in r.stderr


def test_cli_run_drives_the_loop_with_user_io(bundle, tmp_path, site):
    io_dir = tmp_path / "io"
    io_dir.mkdir()
    (io_dir / "robot_io.py").write_text(
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
    # as launch.sh and the systemd unit run it: python -I, robot I/O from EDGERL_IO / EDGERL_IO_PATH
    r = run_installed(site, ["run", str(bundle), "--max-steps", "20", "--rate", "500"], cwd=tmp_path,
                      env={"EDGERL_IO": "robot_io:make_io", "EDGERL_IO_PATH": str(io_dir)})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["loop"]["steps"] == 20 and out["loop"]["actions"] + out["loop"]["fallbacks"] == 20
    assert out["policy"]["count"] == 20
    assert out["loop"]["duration_s"] >= 19 / 500


@pytest.mark.parametrize(("args", "message"), [
    ([], "no robot I/O: pass --io"),
    (["--io", "nosuchmod:f"], "cannot import nosuchmod"),
    (["--io", "json:nosuchfunc"], "has no function 'nosuchfunc'"),
    (["--io", "x.py:f", "--io-path", "{bundle}/runtime"], "lies inside the bundle"),
])
def test_cli_run_io_errors_are_one_line(bundle, tmp_path, site, args, message):
    r = run_installed(site, ["run", str(bundle), *[a.format(bundle=bundle) for a in args]], cwd=tmp_path)
    assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(BACKENDS["trt"].available()[0], reason="TensorRT is installed here")
def test_build_engine_entry_point_explains_missing_tensorrt(bundle, tmp_path, site):
    r = subprocess.run([sys.executable, "-I", "-B", "-c", _RUN_INSTALLED.replace("'edgerl_runtime'", "'edgerl_runtime.build_engine'"),
                        str(site), str(bundle)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
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

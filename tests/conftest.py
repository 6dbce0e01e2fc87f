"""Shared fixtures: tiny budgets, one torch thread, and a way to run the CLI as a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _native_cache(tmp_path_factory: pytest.TempPathFactory):
    """Built C policy libraries go to a per-session folder, not the user's ~/.cache (and CLI subprocesses
    inherit it)."""
    old = os.environ.get("EDGERL_NATIVE_CACHE")
    os.environ["EDGERL_NATIVE_CACHE"] = str(tmp_path_factory.mktemp("native-cache"))
    yield
    if old is None:
        os.environ.pop("EDGERL_NATIVE_CACHE", None)
    else:
        os.environ["EDGERL_NATIVE_CACHE"] = old


@pytest.fixture(autouse=True)
def _one_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_cli(*args: str, check: bool = True, timeout: float = 600, **popen) -> subprocess.CompletedProcess:
    """Run ``edgerl ARGS`` in a subprocess, as a user would."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "edgerl.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=popen.pop("cwd", REPO), **popen)
    if check and proc.returncode != 0:
        raise AssertionError(f"edgerl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


TINY_SAC = ["--env", "Hopper-v5", "--algo", "sac", "--hidden", "32,32", "--batch-size", "32",
            "--learning-starts", "100", "--eval-episodes", "1", "--progress", "false"]


def kill_after_checkpoint(args: list[str], ckpt: Path, delay: float = 0.3, timeout: float = 180) -> None:
    """Start ``edgerl ARGS``, SIGKILL it ``delay`` s after ``ckpt`` first appears."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "edgerl.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not ckpt.exists() and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

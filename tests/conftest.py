"""Shared fixtures: tiny budgets, one torch thread, and a way to run the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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

"""The generated C on other targets: aarch64 under qemu-user, Cortex-M4 footprint, the C++ control loop.

Each test skips with the reason where its toolchain is absent (Debian: gcc-aarch64-linux-gnu +
qemu-user, gcc-arm-none-eabi + libnewlib-arm-none-eabi, g++).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgerl.export.native import export_c
from edgerl.export.native.footprint import footprint, scratch_bytes
from edgerl.runtime.backends.c import CFLAGS, STRICT_FLAGS, NativePolicy, compile_c, find_compiler
from edgerl.runtime.profile import load_profile
from tests.export.c_policies import make_policy

REPO = Path(__file__).resolve().parents[2]
M4 = list(load_profile("mcu-cortex-m4").c_cross or ())


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian: gcc-aarch64-linux-gnu qemu-user "
                    "gcc-arm-none-eabi libnewlib-arm-none-eabi g++)")


@pytest.fixture(scope="module")
def ofenet_c(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """C of a SAC + OFENet policy (normaliser, input scale, concat, folded BatchNorm, swish, ReLU, tanh)."""
    tmp = tmp_path_factory.mktemp("ofenet-c")
    export_c(make_policy("sac-ofenet", "dense", tmp), tmp / "c", compile_check=False)
    return tmp / "c"


def _driver(obs: np.ndarray) -> str:
    """A C program that runs edgerl_act on ``obs`` and prints each action with 9 digits."""
    rows = ",\n".join("{" + ", ".join(f"{float(v):.9g}f" for v in row) + "}" for row in obs)
    return f"""#include <stdio.h>
#include "policy.h"
static const float obs[{len(obs)}][EDGERL_OBS_DIM] = {{
{rows}
}};
int main(void)
{{
    edgerl_scratch s;
    edgerl_action_t a[EDGERL_ACT_DIM];
    int k, j;
    for (k = 0; k < {len(obs)}; ++k) {{
        if (edgerl_act(obs[k], a, &s) != EDGERL_OK) return 3;
        for (j = 0; j < EDGERL_ACT_DIM; ++j) printf("%.9g ", (double)a[j]);
        printf("\\n");
    }}
    return 0;
}}
"""


def test_aarch64_under_qemu_matches_host(ofenet_c: Path, tmp_path: Path) -> None:
    _need("aarch64-linux-gnu-gcc", "qemu-aarch64")
    if find_compiler() is None:
        pytest.skip("no host C compiler to compare with")
    lib = tmp_path / "host.so"
    compile_c([ofenet_c / "policy.c"], lib, (*CFLAGS, *STRICT_FLAGS))
    host = NativePolicy(lib)
    obs = np.random.default_rng(0).normal(1.0, 3.0, size=(200, host.obs_dim)).astype(np.float32)
    want, rc = host.act_batch(obs)
    assert rc == 0
    (tmp_path / "driver.c").write_text(_driver(obs))
    exe = tmp_path / "policy-aarch64"
    subprocess.run(["aarch64-linux-gnu-gcc", "-std=c99", "-O3", *STRICT_FLAGS, "-static", f"-I{ofenet_c}",
                    str(tmp_path / "driver.c"), str(ofenet_c / "policy.c"), "-o", str(exe), "-lm"], check=True)
    out = subprocess.run(["qemu-aarch64", str(exe)], capture_output=True, text=True, timeout=120, check=True).stdout
    got = np.array([[float(v) for v in line.split()] for line in out.strip().splitlines()], np.float32)
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    assert got.shape == want.shape and np.isfinite(diff).all() and diff.max() <= 1e-5, diff.max()


def test_cortex_m4_footprint(ofenet_c: Path, tmp_path: Path) -> None:
    _need("arm-none-eabi-gcc", "arm-none-eabi-size")
    # Clean for the single-precision FPU too: no float silently promoted to double.
    subprocess.run([*M4, "-std=c99", "-O2", *STRICT_FLAGS, "-Wdouble-promotion", "-c", str(ofenet_c / "policy.c"),
                    "-o", str(tmp_path / "policy.o")], check=True)
    fp = footprint(ofenet_c, M4)
    assert fp["method"].startswith("arm-none-eabi-gcc")
    params = int((ofenet_c / "policy.h").read_text().split("#define EDGERL_PARAMS ")[1].split()[0])
    assert params * 4 <= fp["text"] < params * 4 + 16384  # weights in flash, plus some code
    assert fp["data"] == 0 and fp["bss"] == 0 and fp["ram"] == scratch_bytes(ofenet_c) > 0
    estimate = footprint(ofenet_c, None)
    assert estimate["method"].startswith("estimate") and 0.5 * fp["flash"] <= estimate["flash"] <= 2 * fp["flash"]


@pytest.mark.parametrize("kind", ["ofenet", "lstm"])
def test_cpp_control_loop_builds_and_runs(kind: str, ofenet_c: Path, tmp_path: Path) -> None:
    """deploy/native/main.cpp drives a feed-forward policy (edgerl_act) and a recurrent one (edgerl_step)."""
    _need("g++", "gcc")
    src = ofenet_c
    if kind == "lstm":
        from edgerl.checkpoint import save_checkpoint
        from edgerl.interop import import_policy
        from tests.interop.test_cli_import import _rsl_rl_recurrent

        save_checkpoint(tmp_path / "p.pt", import_policy(_rsl_rl_recurrent(tmp_path), "rsl_rl")[0])
        src = tmp_path / "c"
        export_c(tmp_path / "p.pt", src)
    obj = tmp_path / "policy.o"
    subprocess.run(["gcc", "-std=c99", "-O2", *STRICT_FLAGS, "-c", str(src / "policy.c"), "-o", str(obj)],
                   check=True)
    exe = tmp_path / "control"
    subprocess.run(["g++", "-std=c++11", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{src}",
                    str(REPO / "deploy" / "native" / "main.cpp"), str(obj), "-o", str(exe), "-lm"], check=True)
    out = subprocess.run([str(exe), "50", "500"], capture_output=True, text=True, timeout=60, check=True).stdout
    assert "50 ticks at 500.0 Hz" in out and "faults 0" in out and "deadline misses" in out
    bad = subprocess.run([str(exe), "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage" in bad.stderr

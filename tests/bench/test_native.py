"""edgerl.bench.native (tools/bench_native.py): its policy checkpoints and profile, and the console
report. No compiler, no timing."""

from __future__ import annotations

import torch

from edgerl.bench import native
from edgerl.checkpoint import load_checkpoint
from edgerl.export.policy import policy_from_checkpoint
from edgerl.runtime.profile import load_profile
from tests.bench.conftest import ENV


def test_checkpoint_and_profile(tmp_path):
    env = {**ENV, "observation_space": {**ENV["observation_space"], "shape": [native.OBS_DIM], "low": None,
                                        "high": None},
           "action_space": {**ENV["action_space"], "shape": [native.ACT_DIM], "low": [-1.0] * 6, "high": [1.0] * 6}}
    ckpt = load_checkpoint(native.write_checkpoint(tmp_path / "ckpt.pt", [8, 6], env))
    assert ckpt["kind"] == "policy"
    policy = policy_from_checkpoint(ckpt)
    assert policy.nets()["actor"].spec()["hidden"] == [8, 6] and policy.normalizer is not None
    assert policy(torch.zeros(2, native.OBS_DIM)).shape == (2, native.ACT_DIM)
    profile = load_profile(native.profile_file(tmp_path))
    assert profile.name == "x86-c" and tuple(profile.backends) == ("c", "ort-cpu")


def test_report_lines():
    c = {"p50_net_ns": 400.0, "p99_net_ns": 900.0, "timer_p50_ns": 20.0, "flags": ["-O2"]}
    act = {"c": {"p50_us": 1.0}, "ort-cpu": {"p50_us": 4.0}}
    fp = {"flash": 50_000, "ram": 2_000, "scratch": 800, "method": "estimate"}
    policy = {"macs": 12_750, "native": c, "march_native": {**c, "p50_net_ns": 200.0},
              "native_macs_per_s": 3.2e10, "march_native_macs_per_s": 6.4e10, "act": act, "cortex_m4": fp,
              "act_p50_ratio_c_over_ort": 0.25}
    lines = native.native_lines({"command": "cmd", "peak_macs_per_s": 6.4e10, "policies": {"sac": policy}})
    assert lines[0] == "fp32 single-core peak (numpy sgemm 256^3, 1 thread): 64.0 GMAC/s"
    assert lines[2] == ("sac                  12,750 |  400 ns  900 ns  32.00   50% |     200 ns  900 ns  64.00  100% |"
                        "  1.00 us  4.00 us  0.25")
    assert "p50 20 ns" in lines[3] and "flags -O2" in lines[3]
    assert lines[4] == "Cortex-M4 sac: flash 50,000 B, RAM 2,000 B (scratch 800 B; estimate)"
    assert lines[-2:] == [native.GOALS, "command: cmd"]

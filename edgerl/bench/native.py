"""Native C policy latency (``tools/bench_native.py``): ``edgerl_act`` in a C loop, and
``Policy.act()`` on backend ``c`` vs ``ort-cpu``.

For each shape of :data:`SHAPES` (SAC actors on HalfCheetah-sized observations, random weights:
latency does not depend on their values) it writes a policy checkpoint, deploys a bundle for a
profile listing ``[c, ort-cpu]``, and measures in one run: the C micro-benchmark
(:func:`edgerl.export.native.bench.bench_interleaved`) built with the runtime backend's portable
flags and with ``-march=native`` added, as MACs/s next to this core's fp32 peak
(:func:`edgerl.bench.peak.sgemm_peak_macs`); ``Policy.act()`` p50/p99 per backend, interleaved;
and the policy's Cortex-M4 flash and RAM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgerl.bench.shapes import ACT_DIM, OBS_DIM

SHAPES = {"sac-17-102-102-6": [102, 102], "student-17-32-32-6": [32, 32]}
"""Actor hidden widths: the demo's compact policy (0.8-pruned 512x512), and a 32x32 student."""
GOALS = "goals: native p50 <= 1 us, p99 <= 2 us; c act() p50 <= 0.5x ort-cpu"
ENV_ID = "HalfCheetah-v5"
TARGET = "x86-cpu"
"""The target profile the benchmark's own profile copies, with backends ``[c, ort-cpu]``."""


def write_checkpoint(path: Path, hidden: list[int], env: dict[str, Any]) -> Path:
    """A policy checkpoint of a freshly initialised SAC actor of widths ``hidden`` with an
    observation normaliser (statistics of 256 random observations)."""
    import torch

    from edgerl.algos.sac import SACAgent, SACConfig
    from edgerl.checkpoint import save_checkpoint
    from edgerl.config import to_dict
    from edgerl.export.policy import policy_checkpoint_payload

    torch.manual_seed(0)
    cfg = SACConfig(hidden=hidden, obs_norm=True)
    agent = SACAgent(cfg, obs_dim=OBS_DIM, act_dim=ACT_DIM)
    agent.normalizer.update(torch.randn(256, OBS_DIM, dtype=torch.float64))
    config = {"run": {"env": env["id"]}, "algo": to_dict(cfg), "prune": {}}
    save_checkpoint(path, policy_checkpoint_payload("sac", env, config, agent.deployed_nets(),
                                                    counters={"global_step": 0}))
    return path


def profile_file(folder: Path) -> Path:
    """A copy of the :data:`TARGET` profile whose backends are ``[c, ort-cpu]``, written in ``folder``."""
    import yaml

    from edgerl.runtime.profile import default_profiles_dir

    data = yaml.safe_load((default_profiles_dir() / f"{TARGET}.yaml").read_text())
    data.update(name="x86-c", backends=["c", "ort-cpu"])
    path = folder / "x86-c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def act_series(bundle: Path, obs: np.ndarray) -> dict[str, dict[str, float]]:
    """``Policy.act`` latency per backend, interleaved."""
    from edgerl.bench.runners import Timed, time_interleaved
    from edgerl.runtime import Policy

    backends = ("c", "ort-cpu")
    runners = [Timed(p.act, p.close) for p in (Policy.load(bundle, backends=[b]) for b in backends)]
    return dict(zip(backends, time_interleaved(runners, list(obs), min_queries=20000, min_seconds=2.0, rounds=20),
                    strict=True))


def bench_policy(folder: Path, hidden: list[int], env: dict[str, Any], target: Path, calls: int) -> dict[str, Any]:
    """Deploy one shape into ``folder`` and measure it (C loop, ``Policy.act``, Cortex-M4 footprint)."""
    from edgerl.commands.deploy import deploy
    from edgerl.export.native.bench import bench_interleaved, header_sizes, macs_per_s
    from edgerl.export.native.footprint import footprint
    from edgerl.runtime.backends.c import CFLAGS
    from edgerl.runtime.profile import load_profile

    ckpt = write_checkpoint(folder / "ckpt.pt", hidden, env)
    deploy(ckpt, str(target), folder / "bundle", recorded_steps=0)
    c = bench_interleaved(folder / "bundle", {"portable": CFLAGS, "native": (*CFLAGS, "-march=native")}, n=calls)
    native, march = c["portable"], c["native"]
    macs = header_sizes(folder / "bundle")["EDGERL_MACS"]
    m4 = footprint(folder / "bundle", load_profile("mcu-cortex-m4").c_cross)
    obs = np.random.default_rng(1).normal(0.0, 1.0, size=(256, OBS_DIM))
    act = act_series(folder / "bundle", obs)
    return {"macs": macs, "native": native, "march_native": march,
            "native_macs_per_s": macs_per_s(macs, native["p50_net_ns"]),
            "march_native_macs_per_s": macs_per_s(macs, march["p50_net_ns"]),
            "act": act, "cortex_m4": m4,
            "act_p50_ratio_c_over_ort": act["c"]["p50_us"] / act["ort-cpu"]["p50_us"]}


def native_bench(calls: int = 200_000, command: str = "") -> dict[str, Any]:
    """Every shape of :data:`SHAPES` measured, and this core's fp32 peak (MAC/s)."""
    import tempfile

    from edgerl.bench.peak import sgemm_peak_macs
    from edgerl.envs import make_env, space_env_info

    env = make_env(ENV_ID)
    info = space_env_info(env)
    env.close()
    peak = sgemm_peak_macs()
    results: dict[str, Any] = {"command": command, "peak_macs_per_s": peak, "policies": {}}
    with tempfile.TemporaryDirectory(prefix="edgerl-bench-native-") as tmp_dir:
        tmp = Path(tmp_dir)
        target = profile_file(tmp)
        for name, hidden in SHAPES.items():
            folder = tmp / name
            folder.mkdir()
            results["policies"][name] = bench_policy(folder, hidden, info, target, calls)
    return results


def native_lines(results: dict[str, Any]) -> list[str]:
    """The console report of :func:`native_bench`: a table per shape, the method, footprints, goals."""
    peak = results["peak_macs_per_s"]
    lines = [f"fp32 single-core peak (numpy sgemm 256^3, 1 thread): {peak / 1e9:.1f} GMAC/s",
             f"{'policy':<20}{'MACs':>7} | {'C p50':>7}{'C p99':>8}{'GMAC/s':>7}{'peak':>6} | {'native p50':>10}"
             f"{'p99':>8}{'GMAC/s':>7}{'peak':>6} | {'act c':>8}{'act ort':>9}{'c/ort':>6}"]
    for name, r in results["policies"].items():
        n, m, a = r["native"], r["march_native"], r["act"]
        lines.append(
            f"{name:<20}{r['macs']:>7,} | {n['p50_net_ns']:>4.0f} ns{n['p99_net_ns']:>5.0f} ns"
            f"{r['native_macs_per_s'] / 1e9:>7.2f}{100 * r['native_macs_per_s'] / peak:>5.0f}% | "
            f"{m['p50_net_ns']:>7.0f} ns{m['p99_net_ns']:>5.0f} ns{r['march_native_macs_per_s'] / 1e9:>7.2f}"
            f"{100 * r['march_native_macs_per_s'] / peak:>5.0f}% | {a['c']['p50_us']:>5.2f} us{a['ort-cpu']['p50_us']:>6.2f} us"
            f"{r['act_p50_ratio_c_over_ort']:>6.2f}")
    first = next(iter(results["policies"].values()))
    lines.append(f"C: ns per edgerl_act net of the clock_gettime pair (p50 {first['native']['timer_p50_ns']:.0f} ns), "
                 f"median of 5 interleaved runs, flags {' '.join(first['native']['flags'])} (native: + -march=native); "
                 "act: Policy.act() p50 per backend")
    for name, r in results["policies"].items():
        fp = r["cortex_m4"]
        lines.append(f"Cortex-M4 {name}: flash {fp['flash']:,} B, RAM {fp['ram']:,} B (scratch {fp['scratch']:,} B; "
                     f"{fp['method']})")
    return [*lines, GOALS, f"command: {results['command']}"]

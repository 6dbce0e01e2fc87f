"""Native C policy latency: ``edgerl_act`` in a C loop, and ``Policy.act()`` on backend c vs ort-cpu.

For two shapes, a SAC actor 17-102-102-6 (the demo's compact policy: Hopper/HalfCheetah-sized
observation, 0.8-pruned 512x512 widths) and a 32x32 student, it writes a policy checkpoint, deploys
a bundle for a profile listing ``[c, ort-cpu]``, and measures in one run:

- the C micro-benchmark (``edgerl/export/native/bench.py``): p50/p99 ns per ``edgerl_act`` call
  (net of the clock_gettime pair), built with the runtime backend's portable flags and with
  ``-march=native`` added (this CPU's AVX-512; what a build on the device itself could use), and
  MACs/s next to this core's fp32 peak (a single-thread 256^3 numpy sgemm timed in the same run);
- ``Policy.act()`` p50/p99 through the runtime on backend ``c`` and on ``ort-cpu``, interleaved
  (``edgerl.bench.latency.measure``), and their ratio.

Weights are random (latency does not depend on their values).

    OMP_NUM_THREADS=1 .venv/bin/python tools/bench_native.py [--json out.json]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from edgerl.algos.sac import SACAgent, SACConfig  # noqa: E402
from edgerl.bench.latency import Series, measure, percentiles  # noqa: E402
from edgerl.checkpoint import save_checkpoint  # noqa: E402
from edgerl.commands.deploy import deploy  # noqa: E402
from edgerl.config import to_dict  # noqa: E402
from edgerl.envs import make_env, space_env_info  # noqa: E402
from edgerl.export.native.bench import bench_interleaved, header_sizes, macs_per_s  # noqa: E402
from edgerl.export.native.footprint import footprint  # noqa: E402
from edgerl.runtime import Policy  # noqa: E402
from edgerl.runtime.backends.c import CFLAGS  # noqa: E402
from edgerl.runtime.profile import load_profile  # noqa: E402

SHAPES = {"sac-17-102-102-6": [102, 102], "student-17-32-32-6": [32, 32]}
GOALS = "goals: native p50 <= 1 us, p99 <= 2 us; c act() p50 <= 0.5x ort-cpu"


def sgemm_peak_macs(n: int = 256, reps: int = 50) -> float:
    """Single-thread fp32 GEMM throughput (MAC/s) on this core: the best of ``reps`` 256^3 products."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return n ** 3 / best


def write_checkpoint(path: Path, hidden: list[int], env: dict) -> Path:
    torch.manual_seed(0)
    cfg = SACConfig(hidden=hidden, obs_norm=True)
    agent = SACAgent(cfg, obs_dim=17, act_dim=6)
    agent.normalizer.update(torch.randn(256, 17, dtype=torch.float64))
    save_checkpoint(path, {"kind": "train", "algo": "sac", "env": env,
                           "config": {"run": {"env": env["id"]}, "algo": to_dict(cfg), "prune": {}},
                           "agent": agent.state(), "hooks": {}, "counters": {"global_step": 0}})
    return path


def profile_file(folder: Path) -> Path:
    import yaml

    data = yaml.safe_load((REPO / "profiles" / "targets" / "x86-cpu.yaml").read_text())
    data.update(name="x86-c", backends=["c", "ort-cpu"])
    path = folder / "x86-c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def act_series(bundle: Path, obs: np.ndarray) -> dict[str, dict[str, float]]:
    """``Policy.act`` latency per backend, interleaved."""
    policies = {b: Policy.load(bundle, backends=[b]) for b in ("c", "ort-cpu")}
    try:
        series = [Series(b, p.act, list(obs)) for b, p in policies.items()]
        measure(series, min_queries=20000, min_seconds=2.0, rounds=20)
        return {s.key: percentiles(s.latencies()) for s in series}
    finally:
        for p in policies.values():
            p.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200_000, help="edgerl_act calls timed in the C loop")
    ap.add_argument("--json", default=None, help="write the results as JSON")
    args = ap.parse_args(argv)
    env = make_env("HalfCheetah-v5")
    info = copy.deepcopy(space_env_info(env))
    env.close()
    peak = sgemm_peak_macs()
    results: dict = {"command": "OMP_NUM_THREADS=1 .venv/bin/python tools/bench_native.py", "peak_macs_per_s": peak,
                     "policies": {}}
    with tempfile.TemporaryDirectory(prefix="edgerl-bench-native-") as tmp_dir:
        tmp = Path(tmp_dir)
        target = profile_file(tmp)
        for name, hidden in SHAPES.items():
            folder = tmp / name
            folder.mkdir()
            ckpt = write_checkpoint(folder / "ckpt.pt", hidden, info)
            deploy(ckpt, str(target), folder / "bundle", recorded_steps=0)
            c = bench_interleaved(folder / "bundle", {"portable": CFLAGS, "native": (*CFLAGS, "-march=native")},
                                  n=args.calls)
            native, march = c["portable"], c["native"]
            macs = header_sizes(folder / "bundle")["EDGERL_MACS"]
            m4 = footprint(folder / "bundle", load_profile("mcu-cortex-m4").c_cross)
            obs = np.random.default_rng(1).normal(0.0, 1.0, size=(256, 17))
            act = act_series(folder / "bundle", obs)
            results["policies"][name] = {"macs": macs, "native": native, "march_native": march,
                                         "native_macs_per_s": macs_per_s(macs, native["p50_net_ns"]),
                                         "march_native_macs_per_s": macs_per_s(macs, march["p50_net_ns"]),
                                         "act": act, "cortex_m4": m4,
                                         "act_p50_ratio_c_over_ort": act["c"]["p50_us"] / act["ort-cpu"]["p50_us"]}
    print(f"fp32 single-core peak (numpy sgemm 256^3, 1 thread): {peak / 1e9:.1f} GMAC/s")
    print(f"{'policy':<20}{'MACs':>7} | {'C p50':>7}{'C p99':>8}{'GMAC/s':>7}{'peak':>6} | {'native p50':>10}"
          f"{'p99':>8}{'GMAC/s':>7}{'peak':>6} | {'act c':>8}{'act ort':>9}{'c/ort':>6}")
    for name, r in results["policies"].items():
        n, m, a = r["native"], r["march_native"], r["act"]
        print(f"{name:<20}{r['macs']:>7,} | {n['p50_net_ns']:>4.0f} ns{n['p99_net_ns']:>5.0f} ns"
              f"{r['native_macs_per_s'] / 1e9:>7.2f}{100 * r['native_macs_per_s'] / peak:>5.0f}% | "
              f"{m['p50_net_ns']:>7.0f} ns{m['p99_net_ns']:>5.0f} ns{r['march_native_macs_per_s'] / 1e9:>7.2f}"
              f"{100 * r['march_native_macs_per_s'] / peak:>5.0f}% | {a['c']['p50_us']:>5.2f} us{a['ort-cpu']['p50_us']:>6.2f} us"
              f"{r['act_p50_ratio_c_over_ort']:>6.2f}")
    first = results["policies"][next(iter(SHAPES))]
    print(f"C: ns per edgerl_act net of the clock_gettime pair (p50 {first['native']['timer_p50_ns']:.0f} ns), median "
          f"of 5 interleaved runs, flags {' '.join(first['native']['flags'])} (native: + -march=native); "
          "act: Policy.act() p50 per backend")
    for name, r in results["policies"].items():
        fp = r["cortex_m4"]
        print(f"Cortex-M4 {name}: flash {fp['flash']:,} B, RAM {fp['ram']:,} B (scratch {fp['scratch']:,} B; {fp['method']})")
    print(GOALS)
    print(f"command: {results['command']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

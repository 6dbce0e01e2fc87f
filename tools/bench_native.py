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

Weights are random (latency does not depend on their values). The benchmark is
``edgerl.bench.native``.

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
import json  # noqa: E402

from edgerl.bench.native import native_bench, native_lines  # noqa: E402
from edgerl.runtime.fileio import atomic_write_text  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200_000, help="edgerl_act calls timed in the C loop")
    ap.add_argument("--json", default=None, help="write the results as JSON")
    args = ap.parse_args(argv)
    results = native_bench(args.calls, command="OMP_NUM_THREADS=1 .venv/bin/python tools/bench_native.py")
    print("\n".join(native_lines(results)))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

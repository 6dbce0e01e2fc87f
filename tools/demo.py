#!/usr/bin/env python
"""``make demo``: the main job on the embedded default, on a CPU with no downloads.

Trains a scaled-up SAC on Hopper-v5 while pruning it, then (as the deploy side is available)
compacts, exports, deploys to the x86-cpu profile, runs the bundle through the torch-free
runtime, and benchmarks it against the dense network, printing one table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def step(title: str, *args: str) -> None:
    print(f"\n=== {title}\n$ edgerl {' '.join(args)}", flush=True)
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "edgerl.cli", *args], check=True, cwd=REPO)
    print(f"--- {title}: {time.monotonic() - t:.0f} s", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="demo_out")
    p.add_argument("--steps", type=int, default=20_000)
    args = p.parse_args()
    out = Path(args.out)
    common = ["--env", "Hopper-v5", "--algo", "sac", "--total-steps", str(args.steps),
              "--learning-starts", "2000", "--eval-every", "5000", "--eval-episodes", "3",
              "--checkpoint-every", "5000"]
    step("train dense SAC (256,256)", "train", *common, "--hidden", "256,256", "--out", str(out / "dense"))


if __name__ == "__main__":
    main()

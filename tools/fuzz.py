#!/usr/bin/env python
"""Run edgerl's property-based fuzz tests with many more examples than the default test run.

The properties live in the test suite (``FUZZ_MODULES``); this script only raises their example
counts (``EDGERL_FUZZ_SCALE`` multiplies every ``max_examples``) and randomises the seed, so a
long run explores inputs the derandomised default run never sees. Every input must end in the
expected edgerl error or a valid result: a traceback, hang or bad action fails the run.

    .venv/bin/python tools/fuzz.py                     # all modules, 100x the default examples
    .venv/bin/python tools/fuzz.py --scale 1000 -k act # one property, longer
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FUZZ_MODULES = [
    "tests/runtime/test_fuzz_runtime.py",  # bundle verifier, contract parser, Policy.act / act_batch
]
"""Pytest files whose properties read ``EDGERL_FUZZ_SCALE``; add a module (or ``file::test``) here."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=100.0, help="multiply every property's max_examples (default 100)")
    ap.add_argument("-k", default=None, help="pytest -k expression selecting properties")
    ap.add_argument("--modules", nargs="+", default=FUZZ_MODULES, help="pytest files (default: %(default)s)")
    args = ap.parse_args(argv)
    if not args.scale > 0:
        ap.error("--scale must be a positive number")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hypothesis-show-statistics", *args.modules]
    if args.k:
        cmd += ["-k", args.k]
    env = {**os.environ, "EDGERL_FUZZ_SCALE": str(args.scale), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print(f"EDGERL_FUZZ_SCALE={args.scale} {' '.join(cmd[1:])}", flush=True)
    return subprocess.call(cmd, cwd=REPO, env=env)


if __name__ == "__main__":
    sys.exit(main())

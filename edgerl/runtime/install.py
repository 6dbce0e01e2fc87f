"""Make a bundle's runtime importable in the current Python (``python runtime/install_runtime.py``).

Writes ``edgerl_runtime.pth`` into this interpreter's site-packages pointing at ``bundle/runtime``,
so ``import edgerl_runtime`` always gets the runtime shipped with the bundle. No network, no build.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import sysconfig
from pathlib import Path

from .fileio import atomic_write_text

REQUIRED = {"numpy": "pip install 'numpy>=1.24'", "onnxruntime": "pip install onnxruntime (or onnxruntime-gpu)"}


def main(argv: list[str] | None = None) -> int:
    """Install the .pth file and report the runtime's dependencies; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site-packages", type=Path, default=None, help="target folder (default: this Python's)")
    args = ap.parse_args(argv)
    runtime_dir = Path(__file__).resolve().parent.parent
    site = args.site_packages or Path(sysconfig.get_paths()["purelib"])
    pth = site / "edgerl_runtime.pth"
    try:
        atomic_write_text(pth, f"{runtime_dir}\n")
    except PermissionError:
        print(f"error: cannot write {pth}; use a virtualenv (install.sh makes one) or run as its owner",
              file=sys.stderr)
        return 1
    print(f"installed {pth} -> {runtime_dir}")
    missing = 0
    for mod, hint in REQUIRED.items():
        try:
            print(f"  {mod} {importlib.import_module(mod).__version__}")
        except ImportError:
            print(f"  {mod} MISSING: {hint}", file=sys.stderr)
            missing += 1
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())

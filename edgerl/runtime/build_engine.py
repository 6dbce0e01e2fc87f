"""Build and cache the TensorRT engine of a bundle on this device.

Usage: ``python -m edgerl_runtime.build_engine BUNDLE [--force]`` (``deploy/*/build_engine.sh``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .backends.tensorrt import build_engine
from .bundle import verify_bundle
from .errors import EdgerlError
from .profile import profile_from_json


def main(argv: list[str] | None = None) -> int:
    """Verify the bundle, build (or reuse) its engine under ``cache/``; print the engine path."""
    ap = argparse.ArgumentParser(prog="python -m edgerl_runtime.build_engine", description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--force", action="store_true", help="rebuild even if a cached engine exists")
    ap.add_argument("--cache-dir", type=Path, default=None, help="default BUNDLE/cache")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        verify_bundle(args.bundle)
        profile = profile_from_json(args.bundle / "profile.json")
        path = build_engine(args.bundle / "policy.onnx", profile, args.cache_dir or args.bundle / "cache", args.force)
    except EdgerlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

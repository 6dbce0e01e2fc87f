"""Install a bundle's runtime into this Python, after verifying the bundle.

``python -I -B runtime/install_runtime.py`` (first install: the bundle's runtime verifies itself) or
``python -I -B -m edgerl_runtime install BUNDLE`` (update: the runtime already installed on the
robot verifies the new bundle, signature included, before anything of it is installed).

The verified files of ``runtime/edgerl_runtime/`` are copied into this interpreter's
site-packages as the package ``edgerl_runtime``. From then on the device scripts run that
installed copy (``python -I -B -m edgerl_runtime``), so the bundle folder is never on the import
path and the verifier that decides about a bundle is not a file inside it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from .bundle import RUNTIME_DIR, verify_bundle
from .errors import EdgerlError

REQUIRED = {"numpy": "pip install 'numpy>=1.24'", "onnxruntime": "pip install onnxruntime (or onnxruntime-gpu)"}
PACKAGE = "edgerl_runtime"


def install_runtime(bundle: str | os.PathLike, site: str | os.PathLike,
                    trusted_keys: list[str] | None = None) -> Path:
    """Verify ``bundle`` with the running runtime, then copy its runtime into ``site/edgerl_runtime``.

    Returns:
        The installed package folder.

    Raises:
        BundleError: The bundle does not verify (nothing is installed).
    """
    root = Path(bundle)
    manifest = verify_bundle(root, trusted_keys)
    site = Path(site)
    prefix = RUNTIME_DIR + "/"
    files = sorted(rel for rel in manifest["files"] if rel.startswith(prefix) and rel.endswith(".py"))
    site.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{PACKAGE}-", dir=site))
    try:
        for rel in files:
            dst = staging / rel[len(prefix):]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, dst)
        target, old = site / PACKAGE, site / f".{PACKAGE}-old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (site / f"{PACKAGE}.pth").unlink(missing_ok=True)  # older installs pointed into the bundle
    return target


def main(argv: list[str] | None = None, bundle: str | os.PathLike | None = None) -> int:
    """Verify the bundle, install its runtime and report the dependencies; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if bundle is None:
        ap.add_argument("bundle", type=Path)
    ap.add_argument("--site-packages", type=Path, default=None, help="target folder (default: this Python's)")
    ap.add_argument("--trusted-key", action="append", default=None, metavar="PUB",
                    help="require a signature by this Ed25519 public key (repeatable; adds to the machine's keys)")
    args = ap.parse_args(argv)
    root = Path(bundle) if bundle is not None else args.bundle
    site = args.site_packages or Path(sysconfig.get_paths()["purelib"])
    from .signing import configured_keys

    keys = [*configured_keys(), *(args.trusted_key or [])]
    try:
        target = install_runtime(root, site, keys)
    except PermissionError as e:
        print(f"error: cannot write {e.filename or site}; use a virtualenv (install.sh makes one) or run as its owner",
              file=sys.stderr)
        return 1
    except EdgerlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"installed {target} (verified runtime of {root})")
    missing = 0
    for mod, hint in REQUIRED.items():
        try:
            print(f"  {mod} {importlib.import_module(mod).__version__}")
        except ImportError:
            print(f"  {mod} MISSING: {hint}", file=sys.stderr)
            missing += 1
    return 1 if missing else 0

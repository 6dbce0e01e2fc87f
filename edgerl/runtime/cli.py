"""Device-side command line: ``python -m edgerl_runtime {check,verify,run,install,backends,keygen,sign} ...``.

``check`` is what install scripts call: verify the manifest (and its signature where this robot
trusts keys), load (reference check), then time ``act`` and report p50/p90/p99/max against the
profile's latency budget. Run it as the device scripts do, ``python -I -B -m edgerl_runtime``: the
runtime installed in the virtualenv, with no folder of the bundle on the import path.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .backends import available_backends
from .bundle import verify_bundle
from .errors import EdgerlError
from .loop import ControlLoop, apply_realtime
from .policy import Policy
from .signing import configured_keys


def _backends_arg(text: str | None) -> list[str] | None:
    return [b.strip() for b in text.split(",") if b.strip()] if text else None


def _keys(args: argparse.Namespace) -> list[Any]:
    """The machine's trusted keys plus those given with --trusted-key."""
    return [*configured_keys(), *(getattr(args, "trusted_key", None) or [])]


def check(bundle: Path, backends: list[str] | None, iterations: int, verify: bool,
          trusted_keys: list[Any] | None = None) -> dict[str, Any]:
    """Verify, load and time a bundle; returns the report (raises on any failure)."""
    manifest = verify_bundle(bundle, trusted_keys) if verify else None
    with Policy.load(bundle, backends=backends, verify=False) as policy:
        import numpy as np

        with np.load(bundle / "reference.npz", allow_pickle=False) as z:
            obs = z["obs"]
        with policy.unchecked_ranges():  # reference observations may lie outside the io ranges
            for i in range(iterations):
                policy.act(obs[i % len(obs)])
        stats = policy.stats()
        report = {
            "bundle": str(bundle),
            "profile": policy.profile.name,
            "verified_files": len(manifest["files"]) if manifest else None,
            "signed_by": manifest["signed_by"] if manifest else None,
            "backend": policy.backend.describe(),
            "skipped_backends": policy.skipped_backends,
            "reference_samples": int(len(obs)),
            "atol": policy.profile.effective_atol,
            "latency": stats,
            "within_budget": stats["p99_us"] is not None and stats["p99_us"] <= policy.profile.latency_budget_us,
        }
    return report


def _print_check(r: dict[str, Any]) -> None:
    lat = r["latency"]
    print(f"bundle     {r['bundle']} (profile {r['profile']})")
    print(f"verified   {r['verified_files'] if r['verified_files'] is not None else 'skipped'} files"
          + (f", signed by trusted key {r['signed_by']}" if r.get("signed_by") else ""))
    print(f"backend    {r['backend']}")
    for name, reason in r["skipped_backends"].items():
        print(f"skipped    {name}: {reason}")
    print(f"reference  {r['reference_samples']} observations match (atol {r['atol']:g})")
    if lat["count"]:
        print(f"latency    n={lat['count']} p50 {lat['p50_us']:.1f} us  p90 {lat['p90_us']:.1f} us  "
              f"p99 {lat['p99_us']:.1f} us  max {lat['max_us']:.1f} us")
        print(f"budget     {lat['budget_us']:g} us: {lat['misses']} misses, p99 "
              f"{'within' if r['within_budget'] else 'OVER'} budget")
    print("result     OK" if r["within_budget"] or not lat["count"] else "result     OK (latency over budget: see above)")


def _load_io(spec: str, policy: Policy) -> tuple[Any, Any]:
    """``module:factory`` or ``path/file.py:factory``; ``factory(policy)`` returns
    ``(read_obs, write_action)`` or an object with those two methods."""
    mod_name, _, func = spec.partition(":")
    if not func or not mod_name:
        raise EdgerlError(f"--io {spec!r} must look like module:factory or path/to/file.py:factory")
    bundle = policy.bundle_dir.resolve()
    if mod_name.endswith(".py") and bundle in Path(mod_name).resolve().parents:
        raise EdgerlError(f"--io {mod_name} lies inside the bundle {bundle}; keep robot I/O code outside it")
    try:
        if mod_name.endswith(".py"):
            s = importlib.util.spec_from_file_location(Path(mod_name).stem, mod_name)
            if s is None or s.loader is None:
                raise ImportError(f"cannot import {mod_name}")
            module = importlib.util.module_from_spec(s)
            s.loader.exec_module(module)
        else:
            module = importlib.import_module(mod_name)
    except (ImportError, OSError) as e:
        raise EdgerlError(f"--io {spec!r}: cannot import {mod_name} ({e}); give module:factory importable from "
                          "--io-path (EDGERL_IO_PATH) or path/to/file.py:factory") from None
    factory = getattr(module, func, None)
    if not callable(factory):
        raise EdgerlError(f"--io {spec!r}: {mod_name} has no function {func!r}")
    io = factory(policy)
    if isinstance(io, tuple) and len(io) == 2:
        return io
    if not (callable(getattr(io, "read_obs", None)) and callable(getattr(io, "write_action", None))):
        raise EdgerlError(f"--io {spec!r}: {func}(policy) must return (read_obs, write_action) or an object with "
                          "those two methods")
    return io.read_obs, io.write_action


def _add_io_path(paths: list[str], bundle: Path) -> None:
    """Put the robot I/O folders on the import path (the bundle itself never goes there)."""
    root = bundle.resolve()
    for entry in reversed(paths):
        p = Path(entry).resolve()
        if p == root or root in p.parents:
            raise EdgerlError(f"--io-path {entry} lies inside the bundle {root}; keep robot I/O code outside it")
        sys.path.insert(0, str(p))


def _run(args: argparse.Namespace) -> int:
    if not args.io:
        raise EdgerlError("no robot I/O: pass --io module:factory or set EDGERL_IO (see the bundle's README.md)")
    _add_io_path(args.io_path, args.bundle)
    with Policy.load(args.bundle, backends=_backends_arg(args.backends), trusted_keys=_keys(args)) as policy:
        for item in apply_realtime(policy.profile):
            logging.info("applied %s", item)
        read_obs, write_action = _load_io(args.io, policy)
        loop = ControlLoop(policy, read_obs, write_action, rate_hz=args.rate, max_steps=args.max_steps)
        signal.signal(signal.SIGTERM, lambda *_: loop.stop())
        try:
            summary = loop.run()
        except KeyboardInterrupt:
            summary = loop.summary
        print(json.dumps({"loop": summary.to_dict(), "policy": policy.stats()}, indent=2))
    return 0


def _trusted_key_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trusted-key", action="append", default=None, metavar="PUB",
                   help="require a signature by this Ed25519 public key (repeatable); adds to $EDGERL_TRUSTED_KEYS "
                        "and /etc/edgerl/trusted_keys/*.pub")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (1 on a user-facing error, 2 for --strict misses)."""
    ap = argparse.ArgumentParser(prog="python -m edgerl_runtime", description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true", help="log backend selection details")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("check", help="verify + reference check + latency quick bench")
    p.add_argument("bundle", type=Path)
    p.add_argument("--backends", help="comma-separated order to try, e.g. trt,ort-cpu (default: the profile's)")
    p.add_argument("-n", "--iterations", type=int, default=2000, help="timed act() calls (default 2000)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--strict", action="store_true", help="exit 2 if p99 latency exceeds the profile's budget")
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 manifest check")
    _trusted_key_arg(p)
    p = sub.add_parser("verify", help="check every file against manifest.json (and its signature)")
    p.add_argument("bundle", type=Path)
    _trusted_key_arg(p)
    p = sub.add_parser("run", help="run the fixed-rate control loop with your robot I/O")
    p.add_argument("bundle", type=Path)
    p.add_argument("--io", default=os.environ.get("EDGERL_IO"),
                   help="module:factory (default $EDGERL_IO); factory(policy) -> (read_obs, write_action)")
    p.add_argument("--io-path", action="append", default=[e for e in os.environ.get("EDGERL_IO_PATH", "").split(os.pathsep) if e],
                   help="folder holding the --io module, put on the import path (repeatable; default $EDGERL_IO_PATH)")
    p.add_argument("--backends", default=os.environ.get("EDGERL_BACKENDS"),
                   help="comma-separated backend order (default $EDGERL_BACKENDS, else the profile's)")
    _trusted_key_arg(p)
    p.add_argument("--rate", type=float, default=None, help="Hz (default: the profile's control_rate_hz)")
    p.add_argument("--max-steps", type=int, default=None)
    sub.add_parser("backends", help="list backends and whether they can run here")
    p = sub.add_parser("install", help="verify a bundle with this runtime, then install the bundle's runtime here")
    p.add_argument("bundle", type=Path)
    p.add_argument("--site-packages", type=Path, default=None, help="target folder (default: this Python's)")
    _trusted_key_arg(p)
    p = sub.add_parser("keygen", help="write a new Ed25519 key pair KEY (private, 0600) and KEY.pub")
    p.add_argument("key", type=Path)
    p = sub.add_parser("sign", help="sign a bundle's manifest.json with an Ed25519 private key (manifest.sig)")
    p.add_argument("bundle", type=Path)
    p.add_argument("--key", type=Path, required=True)
    args = ap.parse_args(argv)
    # `check` prints skipped backends in its report; `run` logs them (journald keeps them).
    level = logging.INFO if args.verbose or args.cmd == "run" else logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.cmd == "verify":
            m = verify_bundle(args.bundle, _keys(args))
            signed = f", signed by trusted key {m['signed_by']}" if m["signed_by"] else ""
            print(f"OK: {len(m['files'])} files match {args.bundle / 'manifest.json'} (profile {m['profile']}){signed}")
        elif args.cmd == "check":
            if args.no_verify and _keys(args):
                raise EdgerlError("--no-verify is refused: this robot trusts signed bundles only "
                                  "(EDGERL_TRUSTED_KEYS, /etc/edgerl/trusted_keys or --trusted-key)")
            r = check(args.bundle, _backends_arg(args.backends), args.iterations, not args.no_verify, _keys(args))
            if args.json:
                print(json.dumps(r, indent=2))
            else:
                _print_check(r)
            if args.strict and not r["within_budget"]:
                return 2
        elif args.cmd == "run":
            return _run(args)
        elif args.cmd == "install":
            from .install import main as install_main

            extra = ["--site-packages", str(args.site_packages)] if args.site_packages else []
            for k in args.trusted_key or []:
                extra += ["--trusted-key", k]
            return install_main(extra, bundle=args.bundle)
        elif args.cmd == "keygen":
            from .signing import generate_key

            private, public = generate_key(args.key)
            print(f"wrote {private} (private: keep it on the build machine) and {public} (copy it to "
                  "/etc/edgerl/trusted_keys/ on each robot)")
        elif args.cmd == "sign":
            from .signing import sign_bundle

            verify_bundle(args.bundle, [])
            print(f"signed {args.bundle / 'manifest.json'} with key {sign_bundle(args.bundle, args.key)}")
        elif args.cmd == "backends":
            for name, (ok, reason) in available_backends().items():
                print(f"{name:9s} {'yes' if ok else 'no '}  {reason}")
    except EdgerlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0

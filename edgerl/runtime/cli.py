"""Device-side command line: ``python -m edgerl_runtime {check,verify,run,backends} ...``.

``check`` is what install scripts call: verify the manifest, load (reference check), then time
``act`` and report p50/p90/p99/max against the profile's latency budget.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from .backends import available_backends
from .bundle import verify_bundle
from .errors import EdgerlError
from .loop import ControlLoop, apply_realtime
from .policy import Policy


def _backends_arg(text: str | None) -> list[str] | None:
    return [b.strip() for b in text.split(",") if b.strip()] if text else None


def check(bundle: Path, backends: list[str] | None, iterations: int, verify: bool) -> dict[str, Any]:
    """Verify, load and time a bundle; returns the report (raises on any failure)."""
    manifest = verify_bundle(bundle) if verify else None
    with Policy.load(bundle, backends=backends, verify=False) as policy:
        import numpy as np

        with np.load(bundle / "reference.npz", allow_pickle=False) as z:
            obs = z["obs"]
        for i in range(iterations):
            policy.act(obs[i % len(obs)])
        stats = policy.stats()
        report = {
            "bundle": str(bundle),
            "profile": policy.profile.name,
            "verified_files": len(manifest["files"]) if manifest else None,
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
    print(f"verified   {r['verified_files'] if r['verified_files'] is not None else 'skipped'} files")
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
    if not func:
        raise EdgerlError(f"--io {spec!r} must look like module:factory or path/to/file.py:factory")
    if mod_name.endswith(".py"):
        s = importlib.util.spec_from_file_location(Path(mod_name).stem, mod_name)
        if s is None or s.loader is None:
            raise EdgerlError(f"--io: cannot import {mod_name}")
        module = importlib.util.module_from_spec(s)
        s.loader.exec_module(module)
    else:
        module = importlib.import_module(mod_name)
    io = getattr(module, func)(policy)
    if isinstance(io, tuple) and len(io) == 2:
        return io
    return io.read_obs, io.write_action


def _run(args: argparse.Namespace) -> int:
    with Policy.load(args.bundle, backends=_backends_arg(args.backends)) as policy:
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
    p = sub.add_parser("verify", help="check every file against manifest.json")
    p.add_argument("bundle", type=Path)
    p = sub.add_parser("run", help="run the fixed-rate control loop with your robot I/O")
    p.add_argument("bundle", type=Path)
    p.add_argument("--io", required=True, help="module:factory; factory(policy) -> (read_obs, write_action)")
    p.add_argument("--backends", help="comma-separated backend order (default: the profile's)")
    p.add_argument("--rate", type=float, default=None, help="Hz (default: the profile's control_rate_hz)")
    p.add_argument("--max-steps", type=int, default=None)
    sub.add_parser("backends", help="list backends and whether they can run here")
    args = ap.parse_args(argv)
    # `check` prints skipped backends in its report; `run` logs them (journald keeps them).
    level = logging.INFO if args.verbose or args.cmd == "run" else logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.cmd == "verify":
            m = verify_bundle(args.bundle)
            print(f"OK: {len(m['files'])} files match {args.bundle / 'manifest.json'} (profile {m['profile']})")
        elif args.cmd == "check":
            r = check(args.bundle, _backends_arg(args.backends), args.iterations, not args.no_verify)
            if args.json:
                print(json.dumps(r, indent=2))
            else:
                _print_check(r)
            if args.strict and not r["within_budget"]:
                return 2
        elif args.cmd == "run":
            return _run(args)
        elif args.cmd == "backends":
            for name, (ok, reason) in available_backends().items():
                print(f"{name:9s} {'yes' if ok else 'no '}  {reason}")
    except EdgerlError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0

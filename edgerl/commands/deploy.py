"""``edgerl deploy``: checkpoint -> (compact) -> ONNX + contract -> a verified bundle for a target.

The bundle is what goes onto the robot: ``policy.onnx``, ``contract.json``, ``reference.npz``
(observations with the actions the torch policy gives for them), ``profile.json``, the torch-free
runtime, the target family's device files, and ``manifest.json`` with the sha256 of every file.
TensorRT engines are not built here: they are built and cached on the device
(``build_engine.sh``), since an engine only runs on the GPU and TensorRT version that built it.

``--sign KEY`` signs the manifest with an Ed25519 key (``--gen-key KEY`` makes one); a robot that
trusts the public key refuses bundles without that signature. ``--force`` replaces only a
previous edgerl bundle (recognised by its ``manifest.json``), never a run folder or other files.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

REFERENCE_OBS = 64


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", help="a train or compact checkpoint (ckpt.pt / compact.pt or a run folder)")
    p.add_argument("--target",
                   help="target profile name (x86-cpu, desktop-gpu, jetson, jetson-orin-nano, jetson-agx-orin, "
                        "jetson-xavier-nx, mcu-cortex-m4) or a profile YAML path")
    p.add_argument("-o", "--output", default=None, help="bundle folder (default: <ckpt dir>/bundle-<target>)")
    p.add_argument("--force", action="store_true",
                   help="replace a previous edgerl bundle in the output folder (its cache/ and logs/ are kept); "
                        "a folder holding anything else is refused")
    p.add_argument("--sign", default=None, metavar="KEY",
                   help="sign the manifest with this Ed25519 private key (needs: pip install 'edgerl[sign]')")
    p.add_argument("--gen-key", default=None, metavar="KEY",
                   help="write a new Ed25519 key pair KEY (private, mode 0600) and KEY.pub, then exit")
    p.add_argument("--recorded-steps", type=int, default=256,
                   help="env steps recorded for the compaction/export checks and reference observations (0: random only)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="precision of the deployed graph (default: the profile's); int8 is calibrated on "
                        "--observations or the run's replay buffer, checked against the profile's parity bars")
    p.add_argument("--observations", metavar="NPZ", default=None,
                   help="int8 calibration observations (.npz with 'obs'); default: replay-<step>.npz beside CKPT")
    p.add_argument("--json", default=None, metavar="FILE", help="write a summary of the deployment as JSON")


def deploy(checkpoint: str | Path, target: str, output: str | Path | None = None, force: bool = False,
           recorded_steps: int = 256, sign: str | Path | None = None, precision: str | None = None,
           observations: str | Path | None = None) -> dict[str, Any]:
    """Build the bundle; returns a summary (paths, sizes, checks). ``precision`` overrides the
    profile's (the bundle's profile.json records the one deployed)."""
    import dataclasses

    from edgerl.checkpoint import checkpoint_file, load_checkpoint, save_checkpoint
    from edgerl.compact import compact_checkpoint
    from edgerl.export.api import export_policy
    from edgerl.export.observations import reference_observations
    from edgerl.export.precision_checks import PrecisionThresholds
    from edgerl.export.quantize import check_precision_name, latest_replay
    from edgerl.runtime.bundle import check_output_dir, write_bundle
    from edgerl.runtime.fileio import sha256_file
    from edgerl.runtime.profile import load_profile

    src = checkpoint_file(checkpoint)
    profile = load_profile(target)
    profile = dataclasses.replace(profile, precision=check_precision_name(precision or profile.precision))
    if sign is not None:
        from edgerl.runtime.signing import load_private_key

        load_private_key(sign)  # before the work: a bad key is a one-line error
    out = Path(output) if output else src.parent / f"bundle-{profile.name}"
    check_output_dir(out, force)  # before the work, and again (atomically with the write) in write_bundle
    ckpt = load_checkpoint(src)
    summary: dict[str, Any] = {"checkpoint": str(src), "target": profile.name, "bundle": str(out)}
    with tempfile.TemporaryDirectory(prefix="edgerl-deploy-") as tmp_dir:
        tmp = Path(tmp_dir)
        policy_ckpt = src
        if ckpt["kind"] != "policy":
            payload, report = compact_checkpoint(
                ckpt, recorded_steps=min(recorded_steps, 256),
                source={"checkpoint": str(src), "sha256": sha256_file(src), "kind": ckpt["kind"]})
            policy_ckpt = tmp / "compact.pt"
            save_checkpoint(policy_ckpt, payload)
            summary["compact"] = {"params": [report.params_before, report.params_after],
                                  "macs": [report.macs_before, report.macs_after],
                                  "max_abs_diff": report.max_abs_diff}
        extra = _native_files(policy_ckpt, src, profile, tmp / "native", summary) if "c" in profile.backends else {}
        # TensorRT 11 is strongly typed: FP16 must be in the graph. Below 11 the builder flag does it.
        # Without TensorRT (ORT only) fp16 is a float16 graph too.
        fp16_graph = profile.precision == "fp16" and ("trt" not in profile.backends or
                                                      int(str(profile.trt_version or "11").split(".")[0]) >= 11)
        graph_precision = "fp16" if fp16_graph else ("int8" if profile.precision == "int8" else "fp32")
        onnx_path = tmp / "policy.onnx"
        export = export_policy(policy_ckpt, onnx_path, precision=graph_precision, recorded_steps=recorded_steps,
                               contract_path=tmp / "contract.json", calibration_obs=observations or latest_replay(src),
                               thresholds=PrecisionThresholds(**profile.parity_for(graph_precision)))
        contract = json.loads((tmp / "contract.json").read_text())
        contract["source"]["checkpoint"] = str(src.resolve())  # the file a user knows, not the temp compact
        contract["source"]["sha256"] = sha256_file(src)
        ref = reference_observations(load_checkpoint(policy_ckpt), REFERENCE_OBS, recorded=recorded_steps > 0,
                                     recorded_only=graph_precision == "int8")
        manifest = write_bundle(out, onnx_path, contract, ref["obs"], ref["action"], profile, overwrite=force,
                                extra_files=extra, sign_key=sign, reference_starts=ref.get("start"))
    summary.update({
        "onnx_bytes": export.size_bytes, "opset": export.opset, "precision": export.precision,
        "parity_worst": export.parity.worst, "files": sorted(manifest["files"]),
        "precision_report": export.precision_report.to_dict() if export.precision_report else None,
        "calibration": export.calibration,
        "backends": list(profile.backends),
    })
    if sign is not None:
        from edgerl.runtime.signing import key_id, public_key_of

        summary["signed_by"] = key_id(public_key_of(sign))
    return summary


def _native_files(policy_ckpt: Path, src: Path, profile: Any, out: Path, summary: dict[str, Any]) -> dict[str, Path]:
    """policy.c/policy.h for a profile listing backend ``c``, sized against its flash/RAM budgets."""
    from edgerl.export.native import export_c
    from edgerl.export.native.footprint import check_budget, footprint
    from edgerl.runtime.fileio import sha256_file

    report = export_c(policy_ckpt, out, source_sha256=sha256_file(src), source_name=str(src.resolve()))
    fp = footprint(out, profile.c_cross)
    check_budget(fp, profile)
    summary["native"] = {"params": report.params, "macs": report.macs, "footprint": fp,
                         "parity_worst": max(report.max_abs_diff.values())}
    return {"policy.c": out / "policy.c", "policy.h": out / "policy.h"}


def run(args: argparse.Namespace) -> int:
    from edgerl.errors import ConfigError

    if args.gen_key:
        from edgerl.runtime.signing import generate_key

        private, public = generate_key(args.gen_key)
        print(f"wrote {private} (private: keep it here, pass it to --sign) and {public} (copy it to "
              "/etc/edgerl/trusted_keys/ on each robot)")
        return 0
    if not args.checkpoint or not args.target:
        raise ConfigError("deploy needs a CHECKPOINT and --target NAME (or --gen-key KEY alone)")
    summary = deploy(args.checkpoint, args.target, args.output, args.force, args.recorded_steps, args.sign,
                     args.precision, args.observations)
    print(f"deployed {summary['checkpoint']} for {summary['target']} -> {summary['bundle']}")
    if "compact" in summary:
        c = summary["compact"]
        print(f"  compacted   params {c['params'][0]:,} -> {c['params'][1]:,}, MACs {c['macs'][0]:,} -> {c['macs'][1]:,}")
    print(f"  policy.onnx {summary['onnx_bytes'] / 1024:.1f} KiB, opset {summary['opset']}, {summary['precision']}, "
          f"ORT parity max |diff| {summary['parity_worst']:.2e}"
          + (" (float graph vs torch; the reduced-precision error is below)" if summary["precision"] == "int8" else ""))
    if "native" in summary:
        n, fp = summary["native"], summary["native"]["footprint"]
        print(f"  policy.c    {n['params']:,} constants, {n['macs']:,} MACs; flash {fp['flash'] / 1024:.1f} KiB, "
              f"RAM {fp['ram'] / 1024:.1f} KiB ({fp['method']})")
    for name, s in (summary["precision_report"] or {}).get("stats", {}).items():
        err = f"agreement {s['agreement']:.2%}" if s["agreement"] is not None else \
            f"|a - a_fp32| max {s['max']:.3g}, median {s['median']:.3g}, p99 {s['p99']:.3g}"
        print(f"  {summary['precision']:<11} {name} ({s['n']} obs): {err}")
    print(f"  backends    {' > '.join(summary['backends'])} (first available on the device is used)")
    print(f"  files       {len(summary['files'])} listed in manifest.json (sha256 of each)"
          + (f", signed by key {summary['signed_by']} (manifest.sig)" if "signed_by" in summary else ""))
    print(f"  on device   see {summary['bundle']}/README.md; check with: python -m edgerl_runtime check {summary['bundle']}")
    if args.json:
        from edgerl.runtime.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(summary, indent=2))
    return 0

"""``edgerl deploy``: checkpoint -> (compact) -> ONNX + contract -> a verified bundle for a target.

The bundle is what goes onto the robot: ``policy.onnx``, ``contract.json``, ``reference.npz``
(observations with the actions the torch policy gives for them), ``profile.json``, the torch-free
runtime, the target family's device files, and ``manifest.json`` with the sha256 of every file.
TensorRT engines are not built here: they are built and cached on the device
(``build_engine.sh``), since an engine only runs on the GPU and TensorRT version that built it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

REFERENCE_OBS = 64


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a train or compact checkpoint (ckpt.pt / compact.pt or a run folder)")
    p.add_argument("--target", required=True,
                   help="target profile name (x86-cpu, desktop-gpu, jetson, jetson-orin-nano, jetson-agx-orin, "
                        "jetson-xavier-nx, mcu-cortex-m4) or a profile YAML path")
    p.add_argument("-o", "--output", default=None, help="bundle folder (default: <ckpt dir>/bundle-<target>)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle (its engine cache is kept)")
    p.add_argument("--recorded-steps", type=int, default=256,
                   help="env steps recorded for the compaction/export checks and reference observations (0: random only)")
    p.add_argument("--json", default=None, metavar="FILE", help="write a summary of the deployment as JSON")


def deploy(checkpoint: str | Path, target: str, output: str | Path | None = None, force: bool = False,
           recorded_steps: int = 256) -> dict[str, Any]:
    """Build the bundle; returns a summary (paths, sizes, checks)."""
    from edgerl.checkpoint import load_checkpoint, save_checkpoint
    from edgerl.compact import compact_checkpoint
    from edgerl.export.api import export_policy
    from edgerl.export.observations import reference_observations
    from edgerl.runtime.bundle import write_bundle
    from edgerl.runtime.fileio import sha256_file
    from edgerl.runtime.profile import load_profile

    src = Path(checkpoint)
    src = src / "ckpt.pt" if src.is_dir() else src
    profile = load_profile(target)
    ckpt = load_checkpoint(src)
    out = Path(output) if output else src.parent / f"bundle-{profile.name}"
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
        fp16_graph = profile.precision == "fp16" and "trt" in profile.backends and \
            int(str(profile.trt_version or "11").split(".")[0]) >= 11
        onnx_path = tmp / "policy.onnx"
        export = export_policy(policy_ckpt, onnx_path, fp16=fp16_graph, recorded_steps=recorded_steps,
                               contract_path=tmp / "contract.json")
        contract = json.loads((tmp / "contract.json").read_text())
        contract["source"]["checkpoint"] = str(src.resolve())  # the file a user knows, not the temp compact
        contract["source"]["sha256"] = sha256_file(src)
        ref = reference_observations(load_checkpoint(policy_ckpt), REFERENCE_OBS, recorded=recorded_steps > 0)
        manifest = write_bundle(out, onnx_path, contract, ref["obs"], ref["action"], profile, overwrite=force,
                                extra_files=extra)
    summary.update({
        "onnx_bytes": export.size_bytes, "opset": export.opset, "precision": export.precision,
        "parity_worst": export.parity.worst, "files": sorted(manifest["files"]),
        "backends": list(profile.backends),
    })
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
    summary = deploy(args.checkpoint, args.target, args.output, args.force, args.recorded_steps)
    print(f"deployed {summary['checkpoint']} for {summary['target']} -> {summary['bundle']}")
    if "compact" in summary:
        c = summary["compact"]
        print(f"  compacted   params {c['params'][0]:,} -> {c['params'][1]:,}, MACs {c['macs'][0]:,} -> {c['macs'][1]:,}")
    print(f"  policy.onnx {summary['onnx_bytes'] / 1024:.1f} KiB, opset {summary['opset']}, {summary['precision']}, "
          f"ORT parity max |diff| {summary['parity_worst']:.2e}")
    if "native" in summary:
        n, fp = summary["native"], summary["native"]["footprint"]
        print(f"  policy.c    {n['params']:,} constants, {n['macs']:,} MACs; flash {fp['flash'] / 1024:.1f} KiB, "
              f"RAM {fp['ram'] / 1024:.1f} KiB ({fp['method']})")
    print(f"  backends    {' > '.join(summary['backends'])} (first available on the device is used)")
    print(f"  files       {len(summary['files'])} listed in manifest.json (sha256 of each)")
    print(f"  on device   see {summary['bundle']}/README.md; check with: python -m edgerl_runtime check {summary['bundle']}")
    if args.json:
        from edgerl.runtime.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(summary, indent=2))
    return 0

"""``edgerl compact``: the smallest network that computes the same deployed function."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgerl.errors import ConfigError
from edgerl.runtime.fileio import atomic_write_text, sha256_file


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="an edgerl checkpoint (ckpt.pt or its run folder)")
    p.add_argument("-o", "--output", default=None, help="output policy checkpoint (default: <ckpt dir>/compact.pt)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    p.add_argument("--recorded-steps", type=int, default=256,
                   help="env steps recorded with the policy to compare on (0: random observations only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--round-gates", action="store_true",
                   help="a --prune gates checkpoint taken inside the pruning window: round each gate as the window's "
                        "end does (theta <= 0.5 removed, the rest fully open) and report how much the actions change; "
                        "without it such a checkpoint is refused")


def run(args: argparse.Namespace) -> int:
    from edgerl.checkpoint import checkpoint_file, load_checkpoint, save_checkpoint
    from edgerl.compact import compact_checkpoint
    from edgerl.outputs import check_output_path

    src = checkpoint_file(args.checkpoint)
    out = check_output_path(args.output if args.output else src.with_name("compact.pt"), "-o", inputs=(src,),
                            replaces_policy=True)
    if args.json:
        check_output_path(args.json, "--json", inputs=(src, out))
    if args.recorded_steps < 0:
        raise ConfigError(f"--recorded-steps must be >= 0, got {args.recorded_steps}")
    ckpt = load_checkpoint(src)
    payload, report = compact_checkpoint(
        ckpt, recorded_steps=args.recorded_steps, seed=args.seed, round_gates=args.round_gates,
        source={"checkpoint": str(src), "sha256": sha256_file(src), "kind": ckpt["kind"]})
    save_checkpoint(out, payload)
    print(format_report(report, src, out))
    if args.json:
        atomic_write_text(args.json, json.dumps({"checkpoint": str(src), "output": str(out), **report.to_dict()}, indent=2))
    return 0


def format_report(report, src: Path, out: Path) -> str:
    def ratio(a: int, b: int) -> str:
        return f"{a / b:.3f}" if b else "-"

    lines = [f"compacted {src} -> {out}",
             f"  params  {report.params_before:>12,} -> {report.params_after:>12,}  (x{ratio(report.params_after, report.params_before)})",
             f"  MACs    {report.macs_before:>12,} -> {report.macs_after:>12,}  (x{ratio(report.macs_after, report.macs_before)})"]
    if report.training_params:
        lines.append(f"  training checkpoint held {report.training_params:,} parameters; dropped: {', '.join(report.dropped)}")
    for net, widths in report.widths_after.items():
        before = report.widths_before.get(net, {})
        lines.append(f"  {net}: " + ", ".join(f"{k} {before.get(k, '?')}->{v}" for k, v in widths.items()))
    for net, removed in report.removed_units.items():
        if removed:
            lines.append(f"  {net}: dead units removed: " + ", ".join(f"{k} -{v}" for k, v in removed.items()))
    if report.gate_rounding:
        removed = report.gate_rounding["units_removed"]
        lines.append(f"  --round-gates: removed {sum(removed.values())} unit(s) with theta <= 0.5 "
                     f"({', '.join(f'{k} -{v}' for k, v in removed.items()) or 'none'}); actions changed by up to "
                     f"{report.gate_rounding['max_abs_diff_vs_open']:.3g} against deploying every gate open")
    lines.append("  max |action difference|: " + ", ".join(f"{k} {v:.2e}" for k, v in report.max_abs_diff.items())
                 + " (limit 1e-05)")
    return "\n".join(lines)

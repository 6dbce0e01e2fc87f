"""``edgerl distill``: a small student policy that acts as the teacher does (policy distillation)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from edgerl.config import add_dataclass_args, from_sources


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edgerl.distill.config import DistillConfig

    p.add_argument("teacher", help="a train or policy checkpoint (SAC, PPO, DQN, or an imported policy, recurrent "
                                    "ones included; ckpt.pt or its run folder)")
    p.add_argument("-o", "--output", default=None, help="student policy checkpoint (default: <teacher dir>/student.pt)")
    p.add_argument("--init", default=None, metavar="CKPT",
                   help="start the student from this (pruned/compacted) checkpoint's deployed networks, not --widths")
    p.add_argument("--env", default=None, metavar="ID",
                   help="env for DAgger rounds and the return check (default: the teacher's; needs the same spaces)")
    p.add_argument("--observations", default=None, metavar="NPZ",
                   help="logged observations (.npz with 'obs') to train on; without --env no env is rolled "
                        "(no DAgger, no return check); a recurrent teacher reads them as one stream in order, "
                        "episodes split where an optional bool 'start' array is True")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    add_dataclass_args(p, DistillConfig, "distillation")


def run(args: argparse.Namespace) -> int:
    import torch

    from edgerl.distill import DistillConfig, distill
    from edgerl.runtime.fileio import atomic_write_text

    cfg = from_sources(DistillConfig, vars(args))
    torch.set_num_threads(max(1, cfg.threads))
    teacher = Path(args.teacher)
    out = Path(args.output) if args.output else (teacher if teacher.is_dir() else teacher.parent) / "student.pt"
    use_env = args.env is not None or args.observations is None
    report = distill(teacher, out, cfg, env_id=args.env, use_env=use_env, observations=args.observations,
                     init=args.init)
    print(format_report(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report.to_dict(), indent=2))
    return 0


def format_report(report) -> str:
    from edgerl.bench.returns import format_ci

    def ratio(a: float, b: float) -> str:
        return f"x{a / b:.3f}" if b else "-"

    widths = "; ".join(f"{n} " + ",".join(str(v) for v in w.values()) for n, w in report.student_widths.items())
    lines = [f"distilled {report.teacher} -> {report.output}",
             f"  params  {report.teacher_params:>10,} -> {report.student_params:>10,}  ({ratio(report.student_params, report.teacher_params)})",
             f"  MACs    {report.teacher_macs:>10,} -> {report.student_macs:>10,}  ({ratio(report.student_macs, report.teacher_macs)})",
             f"  student widths: {widths}",
             f"  {report.states:,} states, {report.rounds} DAgger rounds, {report.steps:,} steps, {report.wall_s:.0f} s"]
    if report.heldout:
        fit = ", ".join(f"{k} {v:.4g}" for k, v in report.heldout.items() if k != "states")
        lines.append(f"  held-out fit ({report.heldout.get('states', 0):,} states): {fit}")
    if report.teacher_return is not None and report.student_return is not None:
        n = report.teacher_return["n"]
        pct = f" ({100 * report.return_ratio:.0f}% of the teacher)" if report.return_ratio is not None and math.isfinite(report.return_ratio) else ""
        lines.append(f"  return over {n} episodes, same seeds (mean [95% interval]): teacher "
                     f"{format_ci(report.teacher_return)}, student {format_ci(report.student_return)}{pct}")
    if report.note:
        lines.append(f"  note: {report.note}")
    return "\n".join(lines)

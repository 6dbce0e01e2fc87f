"""``edgerl export``: a checkpoint's policy -> one checked ONNX file plus ``contract.json``."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="train or policy checkpoint (or a run folder with ckpt.pt)")
    p.add_argument("-o", "--output", metavar="ONNX", default=None,
                   help="ONNX file to write (default: policy.onnx beside the checkpoint; policy_fp16.onnx with --fp16)")
    p.add_argument("--contract", metavar="JSON", default=None,
                   help="contract file to write (default: contract.json beside the ONNX file)")
    p.add_argument("--opset", type=int, default=None,
                   help="ai.onnx opset to ask for (default: the exporter's; the written opset is reported)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default=None,
                   help="fp32 (default); fp16: float16 weights; int8: QDQ graph calibrated on --observations, the "
                        "replay buffer beside CKPT, or a rollout. fp16/int8 report |a - a_fp32| and fail above the bars")
    p.add_argument("--fp16", action="store_true", help="same as --precision fp16 (kept for old scripts)")
    p.add_argument("--observations", metavar="NPZ", default=None,
                   help="int8 calibration observations: .npz with an 'obs' array [n, *obs_shape] (a fifth held out)")
    p.add_argument("--recorded-steps", type=int, default=256, metavar="N",
                   help="env steps rolled with the policy for the parity check (0: random observations only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the rollout and the random observations")
    p.add_argument("--exporter", choices=("auto", "dynamo", "legacy"), default="auto",
                   help="torch ONNX exporter: dynamo (torch.export), legacy (TorchScript), or auto: dynamo, "
                        "then legacy if it fails")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--format", choices=("onnx", "c"), default="onnx",
                   help="onnx: one ONNX file + contract.json; c: policy.h + policy.c (C99, libm only) in the folder -o "
                        "(default: beside the checkpoint), checked against torch")


def run(args: argparse.Namespace) -> int:
    if args.format == "c":
        from edgerl.export.native import export_c

        c_report = export_c(args.checkpoint, args.output, seed=args.seed)
        print(json.dumps(c_report.to_dict(), indent=2) if args.json else c_report.summary())
        return 0
    from edgerl.export import export_policy

    report = export_policy(args.checkpoint, args.output, opset=args.opset, fp16=args.fp16,
                           recorded_steps=args.recorded_steps, contract_path=args.contract, seed=args.seed,
                           exporter=args.exporter, precision=args.precision, calibration_obs=args.observations)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 0

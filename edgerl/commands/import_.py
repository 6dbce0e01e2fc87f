"""``edgerl import``: a policy trained by another library -> an edgerl policy checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="the library's file: SB3 model.zip, rsl_rl model_N.pt, CleanRL "
                                              ".cleanrl_model, skrl agent_N.pt")
    p.add_argument("--from", dest="library", required=True, choices=("sb3", "rsl_rl", "cleanrl", "skrl", "onnx"),
                   help="the library that wrote SRC (onnx: any single-input single-output policy graph, or "
                        "a recurrent one whose state --io names)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="policy checkpoint to write (--from onnx: folder for policy.onnx + contract.json, or the "
                        "bundle with --target)")
    p.add_argument("--env", default=None, help="gymnasium env id the policy acts in (checked against the network; "
                                                "export/run roll it)")
    p.add_argument("--io", default=None, metavar="IO_YAML",
                   help="I/O description: observation terms and scales, normaliser, action clip/scale/offset, "
                        "joint names, control rate")
    p.add_argument("--obs-stats", default=None, metavar="FILE",
                   help="observation normaliser statistics the file lacks (.npz/.json with mean, var, eps, clip; "
                        "tools/export_vecnormalize.py writes SB3's)")
    p.add_argument("--no-normalizer", action="store_true",
                   help="import a policy trained with a normaliser without its statistics (actions will differ)")
    p.add_argument("--activation", default=None,
                   help="hidden activation (default: the file's record, else the library's default)")
    p.add_argument("--out-activation", default=None, help="output activation (skrl output expressions, e.g. tanh)")
    p.add_argument("--target", default=None, help="--from onnx: write a deploy bundle for this target profile")
    p.add_argument("--force", action="store_true", help="--from onnx --target: replace an existing bundle")


def run(args: argparse.Namespace) -> int:
    from edgerl.checkpoint import save_checkpoint
    from edgerl.errors import ConfigError
    from edgerl.interop import import_policy

    if args.library == "onnx":
        return _run_onnx(args)
    if args.target:
        raise ConfigError("--target applies to --from onnx; for a checkpoint run edgerl deploy on the imported policy")

    payload, imported = import_policy(args.src, args.library, env_id=args.env, io_path=args.io,
                                      obs_stats=args.obs_stats, no_normalizer=args.no_normalizer,
                                      activation=args.activation, out_activation=args.out_activation)
    save_checkpoint(Path(args.output), payload)
    net = imported.net
    chain = payload["env"].get("action_chain", {})
    head = "argmax" if imported.discrete else "mean -> tanh -> rescale to the action bounds (as edgerl SAC)" \
        if payload["algo"] == "sac" else " -> ".join(
            ["mean", *(["tanh"] if chain.get("squash") else []),
             *(k.removesuffix("_low") for k in ("clip_low", "scale", "offset") if k in chain)])
    print(f"imported {args.library} {imported.algo} policy {args.src} -> {args.output}")
    spec = net.spec()
    if "encoder" in spec:
        enc = spec["encoder"]["kwargs"]
        print(f"  network    uint8 {enc['in_shape']} -> Nature CNN {enc['channels']} -> {enc['hidden']} -> "
              f"{imported.out_dim}")
    elif "rnn_type" in spec:
        print(f"  network    {spec['in_dim']} -> {spec['rnn_type'].upper()} {spec['rnn_layers']}x{spec['rnn_hidden']} -> "
              f"{spec['hidden']} -> {net.out_dim} ({net.activation}); state zero at episode start")
    else:
        print(f"  network    {spec['in_dim']} -> {spec['hidden']} -> {net.out_dim} ({net.activation})")
    print(f"  normaliser {'baked in' if imported.normalizer is not None else 'none'}")
    print(f"  head       {head}")
    for note in imported.notes:
        print(f"  note       {note}")
    return 0


def _run_onnx(args: argparse.Namespace) -> int:
    from edgerl.errors import ConfigError
    from edgerl.interop.io import read_io
    from edgerl.interop.onnx_policy import import_onnx

    ignored = [o for o, v in (("--obs-stats", args.obs_stats), ("--activation", args.activation),
                              ("--out-activation", args.out_activation), ("--no-normalizer", args.no_normalizer)) if v]
    if ignored:
        raise ConfigError(f"{', '.join(ignored)} do not apply to --from onnx (give a normaliser in --io)")
    res = import_onnx(args.src, args.output, io=read_io(args.io) if args.io else None, env_id=args.env,
                      target=args.target, force=args.force)
    kind = f"bundle for {args.target}" if res["bundle"] else "policy.onnx + contract.json"
    print(f"imported onnx policy {args.src} -> {res['output']} ({kind})")
    print(f"  io         obs {res['obs_shape']} -> action {res['action']}, opset {res['opset']}")
    print(f"  baked in   {', '.join(res['baked_in'])}")
    rec = res["recurrent"]
    if rec is not None:
        print(f"  recurrent  state {rec['state']} of shape {rec['shape']}, zeros at episode start")
    print(f"  checked    onnx.checker; ONNX Runtime vs the original graph on {res['checked_obs']} observations"
          f"{' as one stream, state fed back' if rec else ''}: max |diff| {res['max_abs_diff']:.2e}")
    print("  note       compaction and distillation need a torch policy: import the library's checkpoint for those")
    return 0

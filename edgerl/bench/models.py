"""What ``edgerl bench`` accepts as a model: a checkpoint (exported to ONNX in a work folder for
the ONNX backends) or an ONNX model folder (a bundle, or an export's ``policy.onnx`` +
``contract.json``), resolved into one :class:`BenchModel`.

Checkpoints are the only kind torch runs, and their parameters and MACs are counted on the torch
module (:mod:`edgerl.bench.macs`); a folder's are counted on the ONNX graph
(:mod:`edgerl.bench.graph`). Both kinds also carry the graph counts, which compare across kinds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgerl.errors import CheckpointError, ConfigError, EdgerlError

MODEL_HINT = ("a model is a checkpoint (ckpt.pt, compact.pt, or a run folder holding ckpt.pt) or a folder with "
              "policy.onnx and contract.json (an edgerl deploy bundle or an edgerl export output)")


@dataclass
class BenchModel:
    """One model to time, whatever it was given as."""

    label: str
    """Short unique name in tables and JSON (the shortest distinguishing path suffix)."""
    role: str
    """``model`` or ``baseline``."""
    path: Path
    """As given by the user."""
    kind: str
    """``checkpoint`` or ``onnx`` (a folder with policy.onnx + contract.json)."""
    onnx_path: Path
    """The ONNX file the ONNX backends run (exported into the work folder for checkpoints)."""
    contract: dict[str, Any]
    """The contract document (exported beside the ONNX file for checkpoints)."""
    obs_space: dict[str, Any]
    """``{"shape", "dtype", "low", "high"}`` of one observation as the environment gives it."""
    input_dtype: np.dtype
    """dtype of the graph's input (float32, or uint8 for images)."""
    file_bytes: int
    """Size of the ONNX file (what is deployed)."""
    params: int | None = None
    macs: int | None = None
    counted_from: str = "onnx"
    """``checkpoint`` (torch module) or ``onnx`` (graph)."""
    graph_params: int | None = None
    graph_macs: int | None = None
    obs_mean: np.ndarray | None = None
    """Centre of random observations (the normaliser's mean, or the bundle's reference obs)."""
    obs_std: np.ndarray | None = None
    policy: Any = None
    """The eager torch policy (checkpoints only)."""
    bundle_dir: Path | None = None
    """Set when the folder is a deploy bundle (has manifest.json); it was verified on load."""
    notes: list[str] = field(default_factory=list)
    no_c: str | None = None
    """Why the ``c`` backend cannot run this model (the C export's refusal), or None."""

    def summary(self) -> dict[str, Any]:
        """JSON-able description (the ``models`` entry of a bench report)."""
        return {"label": self.label, "role": self.role, "path": str(self.path), "kind": self.kind,
                "params": self.params, "macs": self.macs, "counted_from": self.counted_from,
                "graph_params": self.graph_params, "graph_macs": self.graph_macs, "file_bytes": self.file_bytes,
                "obs_shape": list(self.obs_space["shape"]), "input_dtype": str(self.input_dtype),
                "bundle": self.bundle_dir is not None, "notes": list(self.notes)}


def unique_labels(paths: list[Path]) -> list[str]:
    """Shortest path suffixes that tell ``paths`` apart (``dense/ckpt.pt`` vs ``pruned/ckpt.pt``)."""
    parts = [p.parts or (str(p),) for p in paths]
    depth = [1] * len(paths)
    for _ in range(max(len(p) for p in parts) if parts else 0):
        labels = ["/".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
        clashes = {lb for lb in labels if labels.count(lb) > 1}
        if not clashes:
            return labels
        depth = [d + 1 if lb in clashes else d for lb, d in zip(labels, depth, strict=True)]
    labels = ["/".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
    return [lb if labels.count(lb) == 1 else f"{lb}#{labels[:i + 1].count(lb)}" for i, lb in enumerate(labels)]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def classify(path: Path) -> str:
    """``checkpoint`` or ``onnx``; a clear one-line error for anything else.

    Raises:
        ConfigError: The path does not exist, or is a folder that holds no model.
    """
    if not path.exists():
        raise ConfigError(f"{path}: no such file or folder; {MODEL_HINT}")
    if path.is_dir():
        if (path / "ckpt.pt").is_file():
            return "checkpoint"
        if (path / "policy.onnx").is_file() and (path / "contract.json").is_file():
            return "onnx"
        raise ConfigError(f"{path}: folder holds neither ckpt.pt nor policy.onnx + contract.json; {MODEL_HINT}")
    if path.suffix == ".onnx":
        raise ConfigError(f"{path}: pass the folder holding policy.onnx and contract.json, not the .onnx file; "
                          f"{MODEL_HINT}")
    return "checkpoint"


def _graph_counts(model: BenchModel) -> None:
    from edgerl.bench.graph import count_graph

    try:
        counts = count_graph(model.onnx_path)
    except EdgerlError as e:  # unreadable graph, or onnx not installed
        model.notes.append(f"graph not counted: {e}")
        return
    model.graph_params, model.graph_macs = counts.params, counts.macs


def load_checkpoint_model(path: Path, label: str, role: str, workdir: Path, exporter: str = "auto",
                          native: bool = False) -> BenchModel:
    """Load a checkpoint's policy, count it, export it to ONNX + contract in a folder of ``workdir``
    (and with ``native`` to ``policy.c``/``policy.h`` beside them, for the ``c`` backend; for a policy
    the C export does not cover, the backend is skipped with the export's reason)."""
    import torch

    from edgerl.bench.macs import count_macs, count_params
    from edgerl.checkpoint import load_checkpoint
    from edgerl.export.api import export_policy
    from edgerl.export.observations import input_dtype, obs_space, policy_obs_stats
    from edgerl.export.policy import policy_from_checkpoint

    ckpt = load_checkpoint(path)
    policy = policy_from_checkpoint(ckpt)
    space = obs_space(ckpt)
    in_dtype = input_dtype(space)
    example = torch.zeros((1, *space["shape"]), dtype=torch.uint8 if in_dtype == np.uint8 else torch.float32)
    folder = workdir / _slug(f"{role}-{label}")
    report = export_policy(path, folder / "policy.onnx", recorded_steps=0, contract_path=folder / "contract.json",
                           exporter=exporter)
    no_c = None
    if native:
        from edgerl.export.native import NativeExportError, export_c

        try:
            export_c(path, folder, compile_check=False)  # the c backend builds and reference-checks it
        except NativeExportError as e:
            no_c = str(e)
    mean, std = policy_obs_stats(policy)
    model = BenchModel(
        label=label, role=role, path=path, kind="checkpoint", onnx_path=Path(report.onnx_path),
        contract=json.loads(Path(report.contract_path).read_text(encoding="utf-8")),
        obs_space={k: space.get(k) for k in ("shape", "dtype", "low", "high")}, input_dtype=in_dtype,
        file_bytes=report.size_bytes, params=count_params(policy), macs=count_macs(policy, example),
        counted_from="checkpoint", obs_mean=mean, obs_std=std, policy=policy, no_c=no_c,
    )
    _graph_counts(model)
    return model


def load_onnx_model(path: Path, label: str, role: str) -> BenchModel:
    """Read a folder with policy.onnx + contract.json (verifying it first if it is a bundle)."""
    from edgerl.runtime.bundle import verify_bundle
    from edgerl.runtime.contract import read_contract

    bundle_dir = None
    if (path / "manifest.json").is_file():
        verify_bundle(path)
        bundle_dir = path
    contract = read_contract(path / "contract.json")
    obs = contract.raw["observation"]
    mean = std = None
    ref = path / "reference.npz"
    if ref.is_file() and contract.obs_dtype.kind == "f":
        try:
            with np.load(ref, allow_pickle=False) as z:
                ref_obs = np.asarray(z["obs"], np.float64)
            if ref_obs.shape[1:] == contract.obs_shape and len(ref_obs) > 1:
                mean, std = ref_obs.mean(axis=0), ref_obs.std(axis=0) + 1e-8
        except (OSError, KeyError, ValueError):
            pass  # the bundle check reports a damaged reference.npz; here it only shapes inputs
    onnx_path = path / "policy.onnx"
    model = BenchModel(
        label=label, role=role, path=path, kind="onnx", onnx_path=onnx_path, contract=contract.raw,
        obs_space={"shape": list(contract.obs_shape), "dtype": str(contract.obs_dtype),
                   "low": obs.get("low"), "high": obs.get("high")},
        input_dtype=np.dtype(np.uint8) if contract.obs_dtype == np.uint8 else np.dtype(np.float32),
        file_bytes=onnx_path.stat().st_size, obs_mean=mean, obs_std=std, bundle_dir=bundle_dir,
    )
    _graph_counts(model)
    model.params, model.macs = model.graph_params, model.graph_macs
    return model


def load_models(models: list[str | Path], baseline: str | Path | None, workdir: Path,
                exporter: str = "auto", native: bool = False) -> list[BenchModel]:
    """Resolve every MODEL and the baseline (last); all must observe the same shape. With ``native``,
    checkpoints are also exported as C (for the ``c`` backend).

    Raises:
        ConfigError: A path is missing or holds no model, or the observation shapes differ.
        CheckpointError, BundleError: A checkpoint or bundle is unreadable or damaged.
    """
    if not models:
        raise ConfigError(f"give at least one MODEL; {MODEL_HINT}")
    paths = [Path(p) for p in models] + ([Path(baseline)] if baseline is not None else [])
    roles = ["model"] * len(models) + (["baseline"] if baseline is not None else [])
    kinds = [classify(p) for p in paths]  # every path checked before any slow export
    labels = unique_labels(paths)
    out: list[BenchModel] = []
    for path, role, kind, label in zip(paths, roles, kinds, labels, strict=True):
        if kind == "onnx":
            out.append(load_onnx_model(path, label, role))
            continue
        try:
            out.append(load_checkpoint_model(path, label, role, workdir, exporter, native))
        except ImportError as e:
            raise CheckpointError(f"{path}: benchmarking a checkpoint needs torch ({e}); pip install "
                                  "'edgerl[train]', or benchmark its deploy bundle instead") from None
    shapes = {m.label: list(m.obs_space["shape"]) for m in out}
    if len({tuple(s) for s in shapes.values()}) > 1:
        raise ConfigError(f"models observe different shapes {shapes}; compare policies of the same environment")
    return out

"""The checkpoint file: one ``torch.save`` dict of tensors and plain data that
``torch.load(path, weights_only=True)`` reads, so loading never executes code.

Layout (format version 1)::

    format, format_version, kind ("train" | "policy"), algo, env {id, observation_space,
    action_space}, config {run, algo, prune}, agent {nets {name: {spec, state}}, optim, ...},
    hooks {name: state}, counters {global_step, updates, episodes}, rng, versions,
    replay (file name of the replay buffer saved beside it, or None)
"""

from __future__ import annotations

import io
import os
import pickle
import platform
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

import edgerl
from edgerl.errors import CheckpointError
from edgerl.runtime.fileio import atomic_write_bytes

FORMAT = "edgerl-checkpoint"
FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a checkpoint or an export."""
    versions = {"edgerl": edgerl.__version__, "torch": str(torch.__version__), "numpy": np.__version__,
                "python": platform.python_version()}
    for mod in ("torch_pruning", "gymnasium", "mujoco", "onnx", "onnxruntime"):
        try:
            versions[mod] = str(__import__(mod).__version__)
        except Exception:  # not installed, or no __version__
            pass
    return versions


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format header and versions) atomically to ``path``."""
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": library_versions(), **payload}
    buf = io.BytesIO()
    torch.save(data, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint; any problem is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        path = path / "ckpt.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file (expected a ckpt.pt written by edgerl train)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = next((ln.strip() for ln in str(e).splitlines() if "Unsupported global" in ln), "")
        if detail:
            raise CheckpointError(
                f"{path}: refused to load: the file holds Python objects, not only tensors and plain data "
                f"(loading it would execute code; edgerl checkpoints never do) [{detail[:200]}]"
            ) from e
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt pickle data); use an intact copy") from e
    except Exception as e:  # truncated zip, garbage bytes, I/O errors: torch raises many kinds
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(
            f"{path}: not a readable checkpoint, truncated or corrupt ({type(e).__name__}: {msg[:160]}); "
            "use an intact copy or the run's previous checkpoint"
        ) from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an edgerl checkpoint (no '{FORMAT}' header); is it from another tool?")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is not supported by edgerl {edgerl.__version__} "
            f"(supports {FORMAT_VERSION}); use the edgerl version that wrote it"
        )
    for key in ("kind", "algo", "env", "config", "agent"):
        if key not in data:
            raise CheckpointError(f"{path}: checkpoint is missing its '{key}' entry; the file is damaged")
    return data


def rng_state(np_rng: np.random.Generator) -> dict[str, Any]:
    """RNG states of torch, numpy (the loop's generator) and Python's random."""
    return {
        "torch": torch.get_rng_state(),
        "numpy": np_rng.bit_generator.state,
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
    }


def restore_rng(state: dict[str, Any], np_rng: np.random.Generator) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    np_rng.bit_generator.state = state["numpy"]
    py = state["python"]
    random.setstate((py[-2], tuple(py[:-2]), py[-1]))

"""The checkpoint file: one ``torch.save`` dict of tensors and plain data that
``torch.load(path, weights_only=True)`` reads, so loading never executes code.

Layout (format version 2)::

    format, format_version, kind ("train" | "policy"), algo, env {id, observation_space,
    action_space}, config {run, algo, prune}, agent {nets {name: {spec, state}}, optim, ...},
    hooks {name: state}, counters {global_step, updates, episodes}, rng, versions,
    replay (file name of the replay buffer saved beside it, or None),
    content_sha256 (version 2: sha256 of everything else, see :func:`content_digest`)

Integrity: ``torch.load`` checks no CRC, so a flipped byte silently changes a weight. Before
loading, every member of the zip is checked against its CRC32 (all versions); after loading, a
version-2 file's ``content_sha256`` is recomputed over the loaded tensors and plain data. The CRC
alone is not enough: a flipped bit in the zip's central directory (an entry's attributes) makes
torch read a tensor wrongly while every CRC still matches; the digest of what was loaded catches
it. Version-1 files (no digest) are still read, checked by their CRCs only.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import platform
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import edgerl
from edgerl.envs import check_env_info
from edgerl.errors import CheckpointError
from edgerl.runtime.fileio import atomic_write_bytes

FORMAT = "edgerl-checkpoint"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 1: no content digest (CRCs only); version 2 adds ``content_sha256``."""
DIGEST_KEY = "content_sha256"


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


def _digest(h: Any, obj: Any) -> None:
    """Feed a canonical, type-tagged serialisation of ``obj`` into the hash ``h``."""
    if obj is None:
        h.update(b"N")
    elif isinstance(obj, bool):
        h.update(b"B1" if obj else b"B0")
    elif isinstance(obj, int):
        h.update(b"I%d;" % int(obj))
    elif isinstance(obj, float):
        h.update(b"F" + float(obj).hex().encode() + b";")
    elif isinstance(obj, str):
        raw = obj.encode("utf-8", "surrogatepass")
        h.update(b"S%d:" % len(raw) + raw)
    elif isinstance(obj, bytes):
        h.update(b"Y%d:" % len(obj) + obj)
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{list(t.shape)}:".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, (np.ndarray, np.generic)):  # in case a payload carries numpy values
        arr = np.ascontiguousarray(obj)
        h.update(f"A{arr.dtype.str}{list(arr.shape)}:".encode() + arr.tobytes())
    elif isinstance(obj, torch.dtype):
        h.update(f"d{obj};".encode())
    elif isinstance(obj, (list, tuple)):  # torch.Size is a tuple
        h.update(b"L%d:" % len(obj))
        for item in obj:
            _digest(h, item)
    elif isinstance(obj, dict):
        h.update(b"D%d:" % len(obj))
        for key, value in obj.items():
            _digest(h, key)
            _digest(h, value)
    else:
        raise TypeError(f"a checkpoint holds only tensors and plain data, not {type(obj).__name__}")


def content_digest(data: dict[str, Any]) -> str:
    """Hex sha256 over a canonical serialisation of every entry but ``content_sha256`` (tensors
    by dtype, shape and bytes; plain data by type and value; dicts in stored order)."""
    h = hashlib.sha256()
    _digest(h, {k: v for k, v in data.items() if k != DIGEST_KEY})
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format header, versions and content digest) atomically to ``path``."""
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": library_versions(),
            **{k: v for k, v in payload.items() if k not in ("format", "format_version", DIGEST_KEY)}}
    data[DIGEST_KEY] = content_digest(data)
    buf = io.BytesIO()
    torch.save(data, buf)
    atomic_write_bytes(path, buf.getvalue())


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The checkpoint a path names: the file itself, or the ``ckpt.pt`` of a run folder."""
    path = Path(path)
    return path / "ckpt.pt" if path.is_dir() else path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint (a file, or a run folder's ``ckpt.pt``); any problem is a
    one-line :class:`CheckpointError`."""
    path = checkpoint_file(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file (expected a ckpt.pt written by edgerl train)")
    _check_crcs(path)
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
    if type(version) is not int or version not in READABLE_VERSIONS:
        shown = f"{version!r} (a {type(version).__name__}, not an integer)" if type(version) is not int else version
        raise CheckpointError(
            f"{path}: checkpoint format version {str(shown)[:60]} is not supported by edgerl {edgerl.__version__} "
            f"(reads versions {', '.join(map(str, READABLE_VERSIONS))}); use the edgerl version that wrote it"
        )
    if version >= 2:
        stored = data.get(DIGEST_KEY)
        try:
            actual = content_digest(data)
        except TypeError as e:
            raise CheckpointError(f"{path}: checkpoint holds unexpected data ({e}); the file is damaged") from None
        if stored != actual:
            raise CheckpointError(
                f"{path}: checkpoint content does not match its sha256 (stored {str(stored)[:16]}.., "
                f"computed {actual[:16]}..): the file is corrupt or was edited; use an intact copy")
    for key in ("kind", "algo", "env", "config", "agent"):
        if key not in data:
            raise CheckpointError(f"{path}: checkpoint is missing its '{key}' entry; the file is damaged")
    for key, tp in (("kind", str), ("algo", str), ("env", dict), ("config", dict), ("agent", dict)):
        if not isinstance(data[key], tp):
            raise CheckpointError(f"{path}: checkpoint entry '{key}' is a {type(data[key]).__name__}, "
                                  f"not a {tp.__name__}; the file is damaged")
    for parent, keys in (("config", ("run", "algo", "prune")), ("agent", ("nets",))):
        for key in keys:
            if key in data[parent] and not isinstance(data[parent][key], dict):
                raise CheckpointError(f"{path}: checkpoint entry '{parent}.{key}' is a "
                                      f"{type(data[parent][key]).__name__}, not a mapping; the file is damaged")
    if not isinstance(data["agent"].get("normalizer", {}), (dict, type(None))):
        raise CheckpointError(f"{path}: checkpoint entry 'agent.normalizer' is not a mapping; the file is damaged")
    try:
        check_env_info(data["env"])
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return data


def _check_crcs(path: Path) -> None:
    """Every zip member matches its CRC32 (``torch.load`` checks none)."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except zipfile.BadZipFile:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                return  # not a zip at all: torch.load below says what it is (garbage, another format)
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt (its zip directory is "
                              "damaged); use an intact copy or the run's previous checkpoint") from None
    except Exception as e:  # damaged headers: zipfile raises several kinds
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"{path}: not a readable checkpoint, its zip structure is corrupt "
                              f"({type(e).__name__}: {msg[:120]}); use an intact copy") from None
    if bad is not None:
        raise CheckpointError(f"{path}: checkpoint is corrupt (member {bad[:80]!r} fails its CRC check); "
                              "use an intact copy or the run's previous checkpoint")


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

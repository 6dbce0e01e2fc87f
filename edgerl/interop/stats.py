"""Observation-normaliser statistics as a safe file (``.npz`` or ``.json``): what ``--obs-stats``
reads and ``tools/export_vecnormalize.py`` writes. Keys: ``mean``, ``var`` (arrays), ``eps``,
``clip`` (numbers; clip may be infinite), ``formula`` (``var`` or ``std``, see
:data:`edgerl.nets.mlp.NORMALIZER_FORMULAS`)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgerl.errors import ConfigError
from edgerl.runtime.fileio import atomic_write_bytes, atomic_write_text


def write_obs_stats(path: str | os.PathLike, mean: Any, var: Any, *, eps: float, clip: float,
                    formula: str = "var") -> None:
    """Write statistics atomically as ``.npz`` (any other suffix: JSON)."""
    mean_a, var_a = np.asarray(mean, dtype=np.float64).reshape(-1), np.asarray(var, dtype=np.float64).reshape(-1)
    if Path(path).suffix == ".npz":
        buf = io.BytesIO()
        np.savez(buf, mean=mean_a, var=var_a, eps=np.float64(eps), clip=np.float64(clip), formula=np.str_(formula))
        atomic_write_bytes(path, buf.getvalue())
    else:
        doc = {"mean": mean_a.tolist(), "var": var_a.tolist(), "eps": float(eps),
               "clip": None if np.isinf(clip) else float(clip), "formula": formula}
        atomic_write_text(path, json.dumps(doc, indent=1) + "\n")


def read_obs_stats(path: str | os.PathLike) -> dict[str, Any]:
    """Statistics written by :func:`write_obs_stats` (or by hand); float64 arrays.

    Raises:
        ConfigError: Missing file or key, unreadable content, bad formula.
    """
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                data: dict[str, Any] = {k: z[k] for k in z.files}
        else:
            data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--obs-stats {path}: no such file") from None
    except (ValueError, OSError) as e:
        raise ConfigError(f"--obs-stats {path}: unreadable ({str(e).splitlines()[0][:200]}); "
                          "expected .npz or .json with mean and var") from None
    if not isinstance(data, dict) or "mean" not in data or "var" not in data:
        raise ConfigError(f"--obs-stats {path}: needs 'mean' and 'var'")
    formula = str(np.asarray(data.get("formula", "var")))
    if formula not in ("var", "std"):
        raise ConfigError(f"--obs-stats {path}: formula must be var or std, got {formula!r}")
    clip = data.get("clip")
    try:
        mean = np.asarray(data["mean"], dtype=np.float64).reshape(-1)
        var = np.asarray(data["var"], dtype=np.float64).reshape(-1)
        eps = float(np.asarray(data.get("eps", 1e-8)))
        clip_f = np.inf if clip is None else float(np.asarray(clip))
    except (TypeError, ValueError):
        raise ConfigError(f"--obs-stats {path}: mean/var must be lists of numbers, eps/clip numbers") from None
    if mean.shape != var.shape or not (np.all(np.isfinite(mean)) and np.all(var >= 0)):
        raise ConfigError(f"--obs-stats {path}: mean and var must be finite, of one length, var >= 0")
    return {"mean": mean, "var": var, "eps": eps, "clip": clip_f, "formula": formula}

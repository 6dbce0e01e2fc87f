"""Where a command may write: outputs never replace an input, a training checkpoint, a replay
buffer or a run's metrics (torch-free, so the bundle commands share it)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from edgerl.errors import CheckpointError, ConfigError


def check_output_path(out: str | os.PathLike, flag: str, inputs: tuple[str | os.PathLike, ...] = (),
                      replaces_policy: bool = False) -> Path:
    """Refuse an output path that would lose something: a folder, an input, a training checkpoint,
    a replay buffer or a run's metrics. A policy checkpoint may be replaced when
    ``replaces_policy`` (compact rewrites its own output). Returns ``out`` as a Path.

    Raises:
        ConfigError: naming the flag and what is there.
    """
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"{flag} {out} is a folder; pass a file path")
    if any(p.exists() and not p.is_dir() for p in out.parents):
        raise ConfigError(f"{flag} {out}: {next(p for p in out.parents if p.exists() and not p.is_dir())} is a file, "
                          "not a folder; pass a path inside a folder")
    if any(out.resolve() == Path(src).resolve() for src in inputs):
        raise ConfigError(f"{flag} {out} is the input; writing it would replace the input: choose another {flag}")
    if not out.exists():
        return out
    if out.name == "metrics.csv" or out.name.startswith("replay-"):
        raise ConfigError(f"{flag} {out} is a training run's file; choose another {flag}")
    if zipfile.is_zipfile(out):
        try:
            from edgerl.checkpoint import load_checkpoint

            kind = load_checkpoint(out).get("kind")
        except (CheckpointError, ImportError):  # unreadable, or no torch to read it: never replaced
            kind = None
        if kind == "policy" and replaces_policy:
            return out
        what = f"a {kind} checkpoint" if kind else "a zip file (a checkpoint or replay buffer)"
        raise ConfigError(f"{flag} {out} exists and holds {what}, which this command does not replace; "
                          f"choose another {flag} (or move that file away)")
    return out

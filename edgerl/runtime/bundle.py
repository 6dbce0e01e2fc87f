"""Deployment bundles: write one folder the robot needs, and verify it before use.

Layout (see REFERENCE/brief): ``policy.onnx``, ``contract.json``, ``reference.npz``,
``profile.json``, ``runtime/edgerl_runtime/`` (a copy of this package) with
``runtime/install_runtime.py``, the device files of the profile's family (install/launch scripts,
systemd unit, README) and ``manifest.json`` (sha256 of every file), written last. ``cache/``
(TensorRT engines, device state), ``logs/``, ``.venv/`` and ``__pycache__`` are device-local and
not part of the manifest.
"""

from __future__ import annotations

import io
import json
import os
import platform
import shutil
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .contract import parse_contract
from .errors import BundleError
from .fileio import atomic_write, atomic_write_text, sha256_file
from .profile import TargetProfile, profile_to_json, resolve_profile

BUNDLE_FORMAT = "edgerl-bundle"
BUNDLE_VERSION = 1
RUNTIME_VERSION = "0.1.0"
REQUIRED_FILES = ("policy.onnx", "contract.json", "reference.npz", "profile.json")
RUNTIME_DIR = "runtime/edgerl_runtime"
LOCAL_TOP_DIRS = frozenset({"cache", "logs"})
"""Top-level folders the device writes into; not covered by the manifest."""
LOCAL_ANY_DIRS = frozenset({"__pycache__", ".venv"})
"""Folders ignored wherever they appear (bytecode, the device's virtualenv)."""
_REDEPLOY = "re-run edgerl deploy (or copy the original bundle again)"

_INSTALL_SHIM = '''"""Make the bundled runtime importable in this Python: python runtime/install_runtime.py"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edgerl_runtime.install import main  # noqa: E402

sys.exit(main())
'''


def _is_local(rel: PurePosixPath) -> bool:
    return (rel.parts[0] in LOCAL_TOP_DIRS or any(p in LOCAL_ANY_DIRS for p in rel.parts)
            or rel.suffix == ".pyc")


def _walk_files(root: Path) -> Iterator[PurePosixPath]:
    """Relative paths of the bundle's files, skipping device-local folders without entering them."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = PurePosixPath(Path(dirpath).relative_to(root).as_posix())
        dirnames[:] = sorted(d for d in dirnames if not _is_local(rel_dir / d))
        for name in sorted(filenames):
            rel = rel_dir / name
            if not _is_local(rel) and rel.as_posix() != "manifest.json":
                yield rel


def default_device_files_dir(family: str) -> Path:
    """``deploy/<family>`` of the source checkout."""
    return Path(__file__).resolve().parents[2] / "deploy" / family


def _versions(contract: Mapping[str, Any]) -> dict[str, str]:
    versions = {str(k): str(v) for k, v in (contract.get("versions") or {}).items()}
    versions.update(edgerl_runtime=RUNTIME_VERSION, numpy=np.__version__, python=platform.python_version())
    return versions


def write_bundle(
    out_dir: str | os.PathLike,
    onnx_path: str | os.PathLike,
    contract: Mapping[str, Any],
    reference_obs: np.ndarray,
    reference_actions: np.ndarray,
    profile: TargetProfile | Mapping[str, Any] | str,
    device_files_dir: str | os.PathLike | None = None,
    runtime_src: str | os.PathLike | None = None,
    overwrite: bool = False,
    check: bool = True,
    extra_files: Mapping[str, str | os.PathLike] | None = None,
) -> dict[str, Any]:
    """Assemble a bundle; each file is written atomically and ``manifest.json`` last.

    Args:
        out_dir: Bundle folder (created; must be empty unless ``overwrite``).
        onnx_path: Exported ``policy.onnx`` (input ``obs``, output ``action``, dynamic batch).
        contract: The contract mapping (``format: edgerl-contract``).
        reference_obs: ``[N, *obs_shape]`` observations.
        reference_actions: ``[N, *act_shape]`` actions the training framework computed for them.
        profile: Target profile (object, mapping, or name such as ``jetson``).
        device_files_dir: Folder of device files to include; default ``deploy/<family>/``.
        runtime_src: The runtime package to copy; default this package.
        overwrite: Replace an existing bundle in ``out_dir`` (its ``cache/`` is kept).
        check: Load the written bundle with ONNX Runtime CPU and compare against the reference
            actions; on failure the manifest is removed so the bundle cannot be used.
        extra_files: More files to bundle and manifest, ``{bundle-relative path: source file}``
            (e.g. ``policy.c``/``policy.h`` for the ``c`` backend).

    Returns:
        The manifest.
    """
    out = Path(out_dir)
    prof = resolve_profile(profile)
    try:  # validate exactly what the device will read back
        contract_json = json.dumps(dict(contract), indent=2, default=_json_default) + "\n"
    except TypeError as e:
        raise BundleError(f"contract passed to write_bundle: {e}") from None
    c = parse_contract(json.loads(contract_json), source="contract passed to write_bundle")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise BundleError(f"ONNX file {onnx_path} does not exist; export the policy first (edgerl export)")
    obs, act = np.asarray(reference_obs), np.asarray(reference_actions)
    if obs.ndim < 1 or obs.shape[1:] != c.obs_shape or act.shape != (obs.shape[0], *c.act_shape) or obs.shape[0] < 1:
        raise BundleError(f"reference arrays must be obs [N, {list(c.obs_shape)}] and actions [N, {list(c.act_shape)}] "
                          f"with N >= 1; got {obs.shape} and {act.shape}")
    src = Path(runtime_src) if runtime_src is not None else Path(__file__).resolve().parent
    if not (src / "__init__.py").is_file():
        raise BundleError(f"runtime package {src} has no __init__.py; pass runtime_src= the edgerl/runtime folder")
    dev = Path(device_files_dir) if device_files_dir is not None else default_device_files_dir(prof.family)
    if not dev.is_dir():
        raise BundleError(f"device files for family {prof.family!r} not found at {dev}; pass device_files_dir=")
    _prepare_out_dir(out, overwrite)

    files: dict[str, str] = {}

    def put(rel: str, write: Any, mode: int = 0o644) -> None:
        if rel in files:
            raise BundleError(f"two bundle files map to {rel!r} (a device file clashes with a core file); rename it in {dev}")
        path = out / rel
        atomic_write(path, write)
        os.chmod(path, mode)
        files[rel] = sha256_file(path)

    def put_bytes(rel: str, data: bytes) -> None:
        put(rel, lambda tmp: Path(tmp).write_bytes(data))

    def put_copy(rel: str, source: Path, mode: int = 0o644) -> None:
        put(rel, lambda tmp: shutil.copyfile(source, tmp), mode)

    put_copy("policy.onnx", onnx_path)
    put_bytes("contract.json", contract_json.encode())
    buf = io.BytesIO()
    np.savez(buf, obs=obs, action=act)
    put_bytes("reference.npz", buf.getvalue())
    put_bytes("profile.json", profile_to_json(prof).encode())
    for rel, source in sorted((extra_files or {}).items()):
        put_copy(rel, Path(source))
    for py in sorted(src.rglob("*.py")):
        rel = py.relative_to(src)
        if "__pycache__" not in rel.parts:
            put_copy(f"{RUNTIME_DIR}/{rel.as_posix()}", py)
    put_bytes("runtime/install_runtime.py", _INSTALL_SHIM.encode())
    for f in sorted(dev.rglob("*")):
        rel = PurePosixPath(f.relative_to(dev).as_posix())
        if f.is_file() and not _is_local(rel):
            executable = os.access(f, os.X_OK) or f.suffix == ".sh"
            put_copy(rel.as_posix(), f, 0o755 if executable else 0o644)

    for rel in _walk_files(out):  # files of a previous bundle in the same folder
        if rel.as_posix() not in files:
            (out / rel).unlink()
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "profile": prof.name,
        "files": dict(sorted(files.items())),
        "versions": _versions(contract),
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    os.chmod(out / "manifest.json", 0o644)
    if check:
        _self_check(out)
    return manifest


def _json_default(obj: Any) -> Any:
    """numpy arrays and scalars in a contract (e.g. Box bounds) become JSON lists and numbers."""
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    raise TypeError(f"contract value {obj!r} of type {type(obj).__name__} is not JSON-serialisable")


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise BundleError(f"{out} exists and is not a folder; choose another output path")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise BundleError(f"{out} is not empty; choose a new folder or overwrite (edgerl deploy --force)")
        if not ((out / "manifest.json").exists() or (out / "contract.json").exists()):
            raise BundleError(f"{out} is not empty and not an edgerl bundle; refusing to overwrite it, choose an empty folder")
        (out / "manifest.json").unlink(missing_ok=True)  # the folder is not a valid bundle until we finish
    out.mkdir(parents=True, exist_ok=True)


def _self_check(out: Path) -> None:
    from .policy import Policy  # late import: policy imports this module

    try:
        Policy.load(out, backends=["ort-cpu"], verify=True).close()
    except Exception:
        (out / "manifest.json").unlink(missing_ok=True)
        raise


def _fail(path: Path, problem: str, todo: str = _REDEPLOY) -> BundleError:
    return BundleError(f"{path}: {problem}; {todo}")


def read_manifest(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    """Parse and structurally check ``manifest.json`` (no hashing)."""
    root = Path(bundle_dir)
    if not root.is_dir():
        raise BundleError(f"bundle folder {root} does not exist; copy the bundle to the device or fix the path")
    path = root / "manifest.json"
    if not path.is_file():
        raise _fail(path, "missing, so this is not a complete edgerl bundle (writing it may have been interrupted)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _fail(path, f"malformed JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise _fail(path, "must be a JSON object")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise _fail(path, f"'format' is {manifest.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    if manifest.get("version") != BUNDLE_VERSION:
        raise _fail(path, f"bundle version {manifest.get('version')!r} is not supported by this runtime "
                          f"(reads version {BUNDLE_VERSION})", "deploy with a matching edgerl version")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in files.items()
    ):
        raise _fail(path, "'files' must map relative paths to sha256 hex digests")
    for rel in files:
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise _fail(path, f"lists the unsafe path {rel!r}")
    for req in REQUIRED_FILES:
        if req not in files:
            raise _fail(path, f"does not list {req}")
    return manifest


def verify_bundle(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    """Check every file against ``manifest.json``; return the manifest.

    Raises:
        BundleError: Missing manifest or file, malformed JSON, wrong format/version, a changed
            byte (sha256 mismatch) or a file the manifest does not list. The message names the
            file and what to do.
    """
    root = Path(bundle_dir)
    manifest = read_manifest(root)
    files: dict[str, str] = manifest["files"]
    for rel, digest in files.items():
        path = root / rel
        if not path.is_file():
            raise _fail(path, "is listed in manifest.json but missing")
        actual = sha256_file(path)
        if actual != digest:
            raise _fail(path, f"was modified after deployment (sha256 {actual[:12]}... != manifest {digest[:12]}...)")
    for rel in _walk_files(root):
        if rel.as_posix() not in files:
            raise _fail(root / rel, "is not listed in manifest.json (unverified file in the bundle)",
                        f"remove it, or {_REDEPLOY}")
    return manifest

"""Deployment bundles: write one folder the robot needs, and verify it before use.

Layout (see REFERENCE/brief): ``policy.onnx``, ``contract.json``, ``reference.npz``,
``profile.json``, ``runtime/edgerl_runtime/`` (a copy of this package) with
``runtime/install_runtime.py``, the device files of the profile's family (install/launch scripts,
systemd unit, README) and ``manifest.json`` (sha256 of every file), written last; ``manifest.sig``
(Ed25519 signature of ``manifest.json``, :mod:`.signing`) when deployed with ``--sign``.

A verified bundle holds exactly the files its manifest lists, as regular files: no symbolic links,
no unlisted file or folder (so no ``__pycache__``, ``*.pyc``, ``.pth`` or virtualenv the
interpreter could run). The only unlisted content allowed is the device-local state in the
top-level ``cache/`` (TensorRT engines, keyed and hashed by :mod:`.backends.tensorrt`) and
``logs/`` folders, which must hold plain data files: never a link or anything Python would import.
Nothing in a bundle is ever on the import path: the device scripts run the runtime installed in
the robot's virtualenv (``python -I -B -m edgerl_runtime``), which verifies the bundle.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from .contract import parse_contract, valid_episode_starts
from .errors import BundleError
from .fileio import atomic_write, atomic_write_text, sha256_file
from .profile import TargetProfile, profile_to_json, resolve_profile

BUNDLE_FORMAT = "edgerl-bundle"
BUNDLE_VERSION = 1
RUNTIME_VERSION = "0.1.0"
REQUIRED_FILES = ("policy.onnx", "contract.json", "reference.npz", "profile.json")
RUNTIME_DIR = "runtime/edgerl_runtime"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
WRITING_MARKER = ".edgerl-writing.json"
"""Written while a bundle is being (re)written: lists the files the writer owns there."""
DEVICE_DIRS = frozenset({"cache", "logs"})
"""Top-level folders the device writes into: not in the manifest, data files only."""
_CODE_SUFFIXES = frozenset({".py", ".pyc", ".pyo", ".pyw", ".pth", ".so", ".pyd", ".dylib", ".dll",
                            ".zip", ".egg", ".whl", ".sh"})
"""Files Python (or a shell) could run; never allowed in the device-local folders."""
_REDEPLOY = "re-run edgerl deploy (or copy the original bundle again)"
_UNLISTED_HINTS = {
    "__pycache__": "Python bytecode, which the interpreter would run instead of the verified sources "
                   "(written when the bundle's runtime is imported in place); delete it: the device scripts "
                   "run the installed runtime with python -I -B",
    ".venv": "a virtualenv inside the bundle, whose .pth files Python runs at start-up; delete it: "
             "install.sh keeps the virtualenv outside the bundle (EDGERL_VENV)",
}

_INSTALL_SHIM = '''"""Verify this bundle and install its runtime into this Python: python -I -B runtime/install_runtime.py"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # never leave __pycache__ inside the bundle
here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))
from edgerl_runtime.install import main  # noqa: E402

sys.exit(main(bundle=here.parent))
'''


def _unlisted_hint(rel: PurePosixPath) -> str:
    if rel.suffix in (".pyc", ".pyo"):
        return _UNLISTED_HINTS["__pycache__"]
    return _UNLISTED_HINTS.get(rel.name, f"remove it, or {_REDEPLOY}")


def _scan(root: Path) -> Iterator[tuple[PurePosixPath, bool]]:
    """``(relative path, is_dir)`` of everything under ``root``, depth first, never following links.

    Raises:
        BundleError: A symbolic link or something that is neither a regular file nor a folder.
    """
    stack = [PurePosixPath()]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = sorted(os.scandir(root / rel_dir), key=lambda e: e.name, reverse=True)
        except OSError as e:
            raise _fail(root / rel_dir, f"cannot be read ({e.strerror})") from None
        found = []
        for entry in entries:
            rel = rel_dir / entry.name
            if entry.is_symlink():
                raise _fail(root / rel, f"is a symbolic link (to {os.readlink(entry.path)}); a bundle holds regular "
                                        "files only, so a link cannot bring unverified code or data into it",
                            f"replace it by the file it points to or remove it, or {_REDEPLOY}")
            if entry.is_dir(follow_symlinks=False):
                found.append((rel, True))
            elif entry.is_file(follow_symlinks=False):
                found.append((rel, False))
            else:
                raise _fail(root / rel, "is neither a regular file nor a folder (device, socket or pipe)",
                            f"remove it, or {_REDEPLOY}")
        for rel, is_dir in reversed(found):
            yield rel, is_dir
        stack.extend(rel for rel, is_dir in found if is_dir)


def _check_device_local(root: Path, rel: PurePosixPath, is_dir: bool) -> None:
    """``cache/`` and ``logs/`` hold data the device wrote: nothing Python or a shell would run."""
    if rel.name == "__pycache__" or rel.suffix.lower() in _CODE_SUFFIXES or rel.name.startswith("__init__."):
        raise _fail(root / rel, f"looks like code ({rel.name}) inside the device-local folder {rel.parts[0]}/, "
                                "which may only hold engines, their .json records and logs",
                    "delete it (the runtime rebuilds its cache)")


def owned_files(out: Path) -> set[str] | None:
    """Files a previous edgerl bundle (complete, or interrupted while written) owns in ``out``.

    None if ``out`` is not an edgerl bundle: no ``manifest.json`` of format ``edgerl-bundle`` and no
    writing marker. This is the marker ``deploy --force`` relies on before replacing anything.
    """
    for name in (MANIFEST, WRITING_MARKER):
        try:
            doc = json.loads((out / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        files = doc.get("files") if isinstance(doc, dict) and doc.get("format") == BUNDLE_FORMAT else None
        if isinstance(files, (dict, list)) and all(isinstance(f, str) for f in files):
            return {f for f in files if _safe_rel(f)}
    return None


def _safe_rel(rel: str) -> bool:
    p = PurePosixPath(rel)
    return bool(p.parts) and not p.is_absolute() and ".." not in p.parts and "\\" not in rel \
        and p.parts[0] not in DEVICE_DIRS and rel not in (MANIFEST, SIGNATURE, WRITING_MARKER)


def check_output_dir(out: str | os.PathLike, overwrite: bool) -> set[str]:
    """Refuse an output folder whose contents a new bundle would destroy; return the files to replace.

    An empty or new folder is fine. A non-empty one needs ``overwrite`` and must be a previous
    edgerl bundle (its ``manifest.json`` is the marker; an export's ``contract.json`` is not), and
    must hold nothing that bundle does not own besides ``cache/`` and ``logs/``.

    Raises:
        BundleError: Naming what would be lost.
    """
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BundleError(f"{out} exists and is not a folder (or is a symbolic link); choose another output path")
    if not out.is_dir() or not any(out.iterdir()):
        return set()
    owned = owned_files(out)
    listing = sorted(p.name for p in out.iterdir())
    shown = ", ".join(listing[:4]) + (f" and {len(listing) - 4} more" if len(listing) > 4 else "")
    if not overwrite:
        raise BundleError(f"{out} is not empty ({shown}); choose a new folder"
                          + (" or overwrite the previous bundle (edgerl deploy --force)" if owned is not None else ""))
    if owned is None:
        raise BundleError(f"{out} is not an edgerl bundle (no manifest.json of format {BUNDLE_FORMAT!r}); refusing "
                          f"to replace it, which would delete {shown}; choose an empty or new folder")
    foreign = []
    for rel, is_dir in _scan(out):
        text = rel.as_posix()
        if rel.parts[0] in DEVICE_DIRS or text in (MANIFEST, SIGNATURE, WRITING_MARKER) or text in owned:
            continue
        if not is_dir or not any(f.startswith(text + "/") for f in owned):
            foreign.append(text + ("/" if is_dir else ""))
    foreign = [f for f in foreign if not any(f.startswith(g) for g in foreign if g.endswith("/") and g != f)]
    if foreign:
        more = f" and {len(foreign) - 4} more" if len(foreign) > 4 else ""
        raise BundleError(f"{out} holds {len(foreign)} item(s) the previous bundle does not own "
                          f"({', '.join(foreign[:4])}{more}); refusing to delete them: move them away or choose "
                          "another folder")
    return owned


def default_device_files_dir(family: str) -> Path:
    """``deploy/<family>`` shipped with edgerl (the checkout's folder, or a wheel's package data)."""
    from .resources import shipped_dir

    return shipped_dir("deploy") / family


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
    sign_key: str | os.PathLike | None = None,
    extra_files: Mapping[str, str | os.PathLike] | None = None,
    reference_starts: np.ndarray | None = None,
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
        overwrite: Replace an existing bundle in ``out_dir`` (its ``cache/`` and ``logs/`` are kept);
            anything else in the folder that the previous bundle does not own is refused.
        sign_key: Ed25519 private key (PEM) that signs ``manifest.json`` into ``manifest.sig``.
        check: Load the written bundle with ONNX Runtime CPU and compare against the reference
            actions; on failure the manifest is removed so the bundle cannot be used.
        extra_files: More files to bundle and manifest, ``{bundle-relative path: source file}``
            (e.g. ``policy.c``/``policy.h`` for the ``c`` backend).
        reference_starts: Recurrent policies only: ``[N]`` bool, True where a new episode starts
            in the reference stream (the state is reset there); without it the reference is one
            episode from the zero state.

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
    if set(prof.backends) <= {"c"} and not {"policy.c", "policy.h"} <= set(extra_files or {}):
        raise BundleError(f"profile {prof.name} runs only the generated C policy (backends {list(prof.backends)}) and "
                          "no policy.c/policy.h come with this bundle: C is exported from a checkpoint (edgerl deploy "
                          "CKPT, after edgerl import from the training library for a foreign policy), or choose a "
                          "target with an ONNX backend")
    starts = None if reference_starts is None else np.asarray(reference_starts)
    if starts is not None and not valid_episode_starts(starts, obs.shape[0], c):
        raise BundleError(f"reference_starts must be a bool array [{obs.shape[0]}] and only for a recurrent contract; "
                          f"got {starts.dtype} {list(starts.shape)} for a "
                          f"{'recurrent' if c.recurrent else 'feed-forward'} contract")
    src = Path(runtime_src) if runtime_src is not None else Path(__file__).resolve().parent
    if not (src / "__init__.py").is_file():
        raise BundleError(f"runtime package {src} has no __init__.py; pass runtime_src= the edgerl/runtime folder")
    dev = Path(device_files_dir) if device_files_dir is not None else default_device_files_dir(prof.family)
    if not dev.is_dir():
        raise BundleError(f"device files for family {prof.family!r} not found at {dev}; pass device_files_dir=")
    if sign_key is not None:
        from .signing import load_private_key

        load_private_key(sign_key)  # a bad key fails before anything is written
    plan: dict[str, tuple[Any, int]] = {}

    def add(rel: str, write: Any, mode: int = 0o644) -> None:
        if rel in plan:
            raise BundleError(f"two bundle files map to {rel!r} (a device file clashes with a core file); rename it in {dev}")
        if not _safe_rel(rel):
            raise BundleError(f"device file {rel!r} in {dev} would land in a reserved place of the bundle; rename it")
        plan[rel] = (write, mode)

    def add_bytes(rel: str, data: bytes) -> None:
        add(rel, lambda tmp: Path(tmp).write_bytes(data))

    def add_copy(rel: str, source: Path, mode: int = 0o644) -> None:
        add(rel, lambda tmp: shutil.copyfile(source, tmp), mode)

    add_copy("policy.onnx", onnx_path)
    add_bytes("contract.json", contract_json.encode())
    buf = io.BytesIO()
    np.savez(buf, obs=obs, action=act, **({"start": starts} if starts is not None else {}))
    add_bytes("reference.npz", buf.getvalue())
    add_bytes("profile.json", profile_to_json(prof).encode())
    for rel, source in sorted((extra_files or {}).items()):
        add_copy(rel, Path(source))
    for py in sorted(src.rglob("*.py")):
        rel = py.relative_to(src)
        if "__pycache__" not in rel.parts:
            add_copy(f"{RUNTIME_DIR}/{rel.as_posix()}", py)
    add_bytes("runtime/install_runtime.py", _INSTALL_SHIM.encode())
    for f in sorted(dev.rglob("*")):
        rel = PurePosixPath(f.relative_to(dev).as_posix())
        if f.is_file() and "__pycache__" not in rel.parts and rel.suffix != ".pyc":
            executable = os.access(f, os.X_OK) or f.suffix == ".sh"
            add_copy(rel.as_posix(), f, 0o755 if executable else 0o644)

    owned = check_output_dir(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    # Until manifest.json is back, the folder is not a usable bundle, but the marker says which
    # files belong to edgerl, so an interrupted write can be replaced with --force.
    marker = {"format": BUNDLE_FORMAT, "files": sorted(owned | set(plan))}
    atomic_write_text(out / WRITING_MARKER, json.dumps(marker) + "\n")
    for name in (MANIFEST, SIGNATURE):
        (out / name).unlink(missing_ok=True)
    files: dict[str, str] = {}
    for rel, (write, mode) in plan.items():
        path = out / rel
        atomic_write(path, write)
        os.chmod(path, mode)
        files[rel] = sha256_file(path)
    for rel in sorted(owned - set(plan), reverse=True):  # files of the previous bundle no longer shipped
        (out / rel).unlink(missing_ok=True)
        for parent in PurePosixPath(rel).parents:
            if parent.parts and (out / parent).is_dir() and not any((out / parent).iterdir()):
                (out / parent).rmdir()
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "profile": prof.name,
        "files": dict(sorted(files.items())),
        "versions": _versions(contract),
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    os.chmod(out / MANIFEST, 0o644)
    (out / WRITING_MARKER).unlink()
    trusted: list[Any] = []
    if sign_key is not None:
        from .signing import public_key_of, sign_bundle

        sign_bundle(out, sign_key)
        trusted = [public_key_of(sign_key)]
    if check:
        _self_check(out, trusted)
    return manifest


def _json_default(obj: Any) -> Any:
    """numpy arrays and scalars in a contract (e.g. Box bounds) become JSON lists and numbers."""
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    raise TypeError(f"contract value {obj!r} of type {type(obj).__name__} is not JSON-serialisable")


def _self_check(out: Path, trusted_keys: list[Any]) -> None:
    from .policy import Policy  # late import: policy imports this module

    try:
        Policy.load(out, backends=["ort-cpu"], verify=True, trusted_keys=trusted_keys).close()
    except Exception:
        (out / MANIFEST).unlink(missing_ok=True)
        (out / SIGNATURE).unlink(missing_ok=True)
        raise


def _fail(path: Path, problem: str, todo: str = _REDEPLOY) -> BundleError:
    return BundleError(f"{path}: {problem}; {todo}")


_MAX_MANIFEST_BYTES = 16 << 20
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _read_manifest(root: Path) -> tuple[bytes, dict[str, Any]]:
    """The exact bytes of ``manifest.json`` (what a signature covers) and the checked document."""
    if not root.is_dir():
        raise BundleError(f"bundle folder {root} does not exist; copy the bundle to the device or fix the path")
    path = root / MANIFEST
    if path.is_symlink() or not path.is_file():
        raise _fail(path, "missing, so this is not a complete edgerl bundle (writing it may have been interrupted)")
    if path.stat().st_size > _MAX_MANIFEST_BYTES:
        raise _fail(path, f"is larger than {_MAX_MANIFEST_BYTES >> 20} MiB, so it is not an edgerl manifest")
    data = path.read_bytes()
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _fail(path, f"malformed JSON ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not isinstance(manifest, dict):
        raise _fail(path, "must be a JSON object")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise _fail(path, f"'format' is {manifest.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    version = manifest.get("version")
    if type(version) is not int or version != BUNDLE_VERSION:
        raise _fail(path, f"bundle version {version!r} is not supported by this runtime "
                          f"(reads version {BUNDLE_VERSION})", "deploy with a matching edgerl version")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _HEX64.match(v) for k, v in files.items()
    ):
        raise _fail(path, "'files' must map relative paths to lowercase sha256 hex digests")
    for rel in files:
        if not _safe_rel(rel) or PurePosixPath(rel).as_posix() != rel:
            raise _fail(path, f"lists the unsafe path {rel!r} (absolute, '..', not normalised, or a reserved name)")
    for req in REQUIRED_FILES:
        if req not in files:
            raise _fail(path, f"does not list {req}")
    return data, manifest


def read_manifest(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    """Parse and structurally check ``manifest.json`` (no hashing)."""
    return _read_manifest(Path(bundle_dir))[1]


def verify_bundle(bundle_dir: str | os.PathLike, trusted_keys: Sequence[Any] | None = None) -> dict[str, Any]:
    """Check the bundle against ``manifest.json`` (and its signature); return the manifest.

    Args:
        bundle_dir: The bundle folder.
        trusted_keys: Ed25519 public keys (PEM files or key objects) whose signature is required.
            None: the keys this machine trusts (``$EDGERL_TRUSTED_KEYS``, ``/etc/edgerl/trusted_keys``,
            see :func:`.signing.configured_keys`); with none configured a signature is not required.

    Returns:
        The manifest, plus ``signed_by``: the id of the trusted key that signed it, or None.

    Raises:
        BundleError: Missing manifest or file, malformed JSON, wrong format/version, a missing or
            wrong signature where keys are trusted, a changed byte (sha256 mismatch), a file or
            folder the manifest does not list, a symbolic link, or code-like files in ``cache/`` or
            ``logs/``. The message names the path and what to do.
    """
    from .signing import check_signature

    root = Path(bundle_dir)
    data, manifest = _read_manifest(root)
    signed_by = check_signature(root, data, trusted_keys)
    files: dict[str, str] = manifest["files"]
    listed_dirs = {str(d) for rel in files for d in PurePosixPath(rel).parents if d.parts}
    seen = set()
    for rel, is_dir in _scan(root):
        text = rel.as_posix()
        if rel.parts[0] in DEVICE_DIRS:
            if not is_dir and len(rel.parts) == 1:
                raise _fail(root / rel, "must be a folder (device-local state)", "remove the file")
            if len(rel.parts) > 1:
                _check_device_local(root, rel, is_dir)
        elif is_dir:
            if text not in listed_dirs:
                raise _fail(root / rel, "is a folder that manifest.json does not list (unverified content in the "
                                        "bundle)", _unlisted_hint(rel))
        elif text in files:
            seen.add(text)
        elif text not in (MANIFEST, SIGNATURE):
            hint = ("left by an interrupted edgerl deploy; re-run it with --force" if text == WRITING_MARKER
                    else _unlisted_hint(rel))
            raise _fail(root / rel, "is not listed in manifest.json (unverified file in the bundle)", hint)
    for rel in sorted(set(files) - seen):
        raise _fail(root / rel, "is listed in manifest.json but missing")
    for rel, digest in files.items():
        actual = sha256_file(root / rel)
        if actual != digest:
            raise _fail(root / rel, f"was modified after deployment (sha256 {actual[:12]}... != manifest "
                                    f"{digest[:12]}...)")
    return {**manifest, "signed_by": signed_by}

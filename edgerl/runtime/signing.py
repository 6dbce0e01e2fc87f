"""Signed bundles: an Ed25519 signature of ``manifest.json`` (integrity is not authenticity).

The manifest lists the sha256 of every file, so one signature over its exact bytes covers the
whole bundle. ``edgerl deploy --sign KEY`` writes ``manifest.sig``; a robot that trusts a public
key refuses unsigned bundles and bundles signed by any other key. What decides is the runtime
installed on the robot (its virtualenv's ``edgerl_runtime``), never the copy inside the bundle.

Keys: ``python -m edgerl_runtime keygen KEY`` (or ``edgerl deploy --gen-key KEY``) writes the
private key ``KEY`` (PEM PKCS#8, mode 0600) and the public key ``KEY.pub`` (PEM). A robot trusts
the ``*.pub`` files in ``/etc/edgerl/trusted_keys/``, those named in ``$EDGERL_TRUSTED_KEYS``
(files or folders, separated by ``:``) and those passed with ``--trusted-key``.

Needs the ``cryptography`` package (``pip install 'edgerl[sign]'``), imported only when a bundle
is signed or a key is trusted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import BundleError
from .fileio import atomic_write_bytes, atomic_write_text

SIGNATURE_FORMAT = "edgerl-signature"
SIGNATURE_FILE = "manifest.sig"
TRUSTED_KEYS_DIR = Path("/etc/edgerl/trusted_keys")
TRUSTED_KEYS_ENV = "EDGERL_TRUSTED_KEYS"
_HINT = "pip install 'edgerl[sign]' (or pip install cryptography)"
_MAX_KEY_BYTES = 64 << 10


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:
        raise BundleError(f"signed bundles need the cryptography package ({e}): {_HINT}") from None
    return ed25519


def _serialization() -> Any:
    _crypto()
    from cryptography.hazmat.primitives import serialization

    return serialization


def key_id(public_key: Any) -> str:
    """Short fingerprint of a public key: the first 16 hex digits of sha256(raw key bytes)."""
    s = _serialization()
    raw = public_key.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > _MAX_KEY_BYTES:
            raise BundleError(f"{what} {path} is larger than {_MAX_KEY_BYTES >> 10} KiB, so it is not a key file")
        return path.read_bytes()
    except OSError as e:
        raise BundleError(f"{what} {path} cannot be read ({e.strerror}); fix the path") from None


def load_private_key(path: str | os.PathLike) -> Any:
    """Ed25519 private key from a PEM file written by :func:`generate_key`."""
    ed25519, s = _crypto(), _serialization()
    path = Path(path)
    data = _read_key_file(path, "signing key")
    try:
        key = s.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise BundleError(f"signing key {path} is not an unencrypted PEM private key ({e}); make one with "
                          "python -m edgerl_runtime keygen KEY") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise BundleError(f"signing key {path} is a {type(key).__name__}, not an Ed25519 key; make one with "
                          "python -m edgerl_runtime keygen KEY")
    return key


def load_public_key(path: str | os.PathLike) -> Any:
    """Ed25519 public key from a PEM file (``KEY.pub``)."""
    ed25519, s = _crypto(), _serialization()
    path = Path(path)
    data = _read_key_file(path, "trusted key")
    try:
        key = s.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise BundleError(f"trusted key {path} is not a PEM public key ({e}); use the KEY.pub written by "
                          "python -m edgerl_runtime keygen") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise BundleError(f"trusted key {path} is a {type(key).__name__}, not an Ed25519 public key")
    return key


def public_key_of(private_key_path: str | os.PathLike) -> Any:
    """The public key of a private key file."""
    return load_private_key(private_key_path).public_key()


def generate_key(path: str | os.PathLike) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``path`` (private, mode 0600) and ``path.pub``; refuse to overwrite."""
    ed25519, s = _crypto(), _serialization()
    path = Path(path)
    pub = path.with_name(path.name + ".pub")
    for p in (path, pub):
        if p.exists() or p.is_symlink():
            raise BundleError(f"{p} exists; refusing to overwrite a key, choose another path")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    atomic_write_bytes(path, private)  # mkstemp creates it 0600 and the rename keeps the mode
    os.chmod(path, 0o600)
    atomic_write_bytes(pub, key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo))
    os.chmod(pub, 0o644)
    return path, pub


def sign_bundle(bundle_dir: str | os.PathLike, private_key_path: str | os.PathLike) -> str:
    """Sign the bundle's ``manifest.json`` into ``manifest.sig``; returns the key id."""
    root = Path(bundle_dir)
    key = load_private_key(private_key_path)
    data = (root / "manifest.json").read_bytes()
    kid = key_id(key.public_key())
    doc = {"format": SIGNATURE_FORMAT, "version": 1, "algorithm": "ed25519", "key_id": kid,
           "signature": base64.b64encode(key.sign(data)).decode("ascii")}
    atomic_write_text(root / SIGNATURE_FILE, json.dumps(doc, indent=2) + "\n")
    os.chmod(root / SIGNATURE_FILE, 0o644)
    return kid


def configured_keys() -> list[Path]:
    """Public key files this machine trusts: ``$EDGERL_TRUSTED_KEYS`` and ``/etc/edgerl/trusted_keys/*.pub``."""
    found: list[Path] = []
    entries = [e for e in os.environ.get(TRUSTED_KEYS_ENV, "").split(os.pathsep) if e]
    for entry in [*entries, str(TRUSTED_KEYS_DIR)]:
        p = Path(entry)
        if p.is_dir():
            found += sorted(p.glob("*.pub"))
        elif p.exists() or entry in entries:  # a named file that is missing is an error when loaded
            found.append(p)
    return found


def _load_trusted(keys: Sequence[Any]) -> dict[str, Any]:
    loaded = {}
    for k in keys:
        key = load_public_key(k) if isinstance(k, (str, os.PathLike)) else k
        loaded[key_id(key)] = key
    return loaded


def check_signature(root: Path, manifest_bytes: bytes, trusted_keys: Sequence[Any] | None = None) -> str | None:
    """Check ``manifest.sig`` against the trusted keys; return the signer's key id (None if unchecked).

    Args:
        root: The bundle folder.
        manifest_bytes: The exact bytes of its ``manifest.json``.
        trusted_keys: Public key files or objects; None: :func:`configured_keys`. Empty: no
            signature required (a present one is not checked).

    Raises:
        BundleError: Keys are trusted and the bundle is unsigned, signed by another key, or its
            signature does not match the manifest.
    """
    keys = configured_keys() if trusted_keys is None else list(trusted_keys)
    if not keys:
        return None
    trusted = _load_trusted(keys)
    path = root / SIGNATURE_FILE
    todo = "deploy it with edgerl deploy --sign KEY using a key this robot trusts"
    if path.is_symlink() or not path.is_file():
        raise BundleError(f"{path}: missing, but this robot trusts signed bundles only (keys {sorted(trusted)}); {todo}")
    doc: Any = None
    try:
        doc = json.loads(_read_key_file(path, "signature").decode("utf-8"))
        sig = base64.b64decode(doc["signature"], validate=True) if isinstance(doc, dict) else None
    except (ValueError, KeyError, TypeError, RecursionError):
        sig = None
    if not isinstance(doc, dict) or doc.get("format") != SIGNATURE_FORMAT or doc.get("algorithm") != "ed25519" \
            or not isinstance(sig, bytes) or not isinstance(doc.get("key_id"), str):
        raise BundleError(f"{path}: not an edgerl Ed25519 signature; {todo}")
    key = trusted.get(doc["key_id"])
    if key is None:
        raise BundleError(f"{path}: signed by key {doc['key_id'][:16]!r}, which this robot does not trust "
                          f"(trusted: {sorted(trusted)}); {todo}")
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(sig, manifest_bytes)
    except InvalidSignature:
        raise BundleError(f"{path}: the signature by key {doc['key_id']} does not match manifest.json (the "
                          f"bundle was changed after it was signed); {todo}") from None
    return doc["key_id"]

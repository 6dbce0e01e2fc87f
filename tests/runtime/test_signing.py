"""Signed bundles: integrity is not authenticity (issue 12, "Signed bundles")."""

from __future__ import annotations

import json
import os
import stat

import pytest

from edgerl.runtime.bundle import verify_bundle
from edgerl.runtime.cli import main as runtime_main
from edgerl.runtime.errors import BundleError
from edgerl.runtime.fileio import sha256_file
from edgerl.runtime.policy import Policy
from edgerl.runtime.signing import (
    TRUSTED_KEYS_ENV,
    generate_key,
    key_id,
    load_public_key,
    sign_bundle,
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return generate_key(d / "ours"), generate_key(d / "theirs")


@pytest.fixture(autouse=True)
def _no_machine_keys(monkeypatch):
    monkeypatch.delenv(TRUSTED_KEYS_ENV, raising=False)


def _rehash(bundle, rel):
    m = json.loads((bundle / "manifest.json").read_text())
    m["files"][rel] = sha256_file(bundle / rel)
    (bundle / "manifest.json").write_text(json.dumps(m, indent=2))


def test_keygen_writes_a_private_0600_and_a_public_pem(keys):
    (private, public) = keys[0]
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(BundleError, match="exists; refusing to overwrite a key"):
        generate_key(private)


def test_signed_bundle_verifies_with_the_trusted_key(bundle, keys):
    (private, public), _ = keys
    kid = sign_bundle(bundle, private)
    assert kid == key_id(load_public_key(public))
    assert verify_bundle(bundle, [public])["signed_by"] == kid
    Policy.load(bundle, trusted_keys=[public]).close()
    assert verify_bundle(bundle, [])["signed_by"] is None  # no key trusted: signature present but unchecked


def test_unsigned_bundle_is_refused_when_a_key_is_trusted(bundle, keys):
    (_, public), _ = keys
    verify_bundle(bundle)  # nothing trusted on this machine: fine
    with pytest.raises(BundleError, match=r"manifest.sig: missing, but this robot trusts signed bundles only"):
        verify_bundle(bundle, [public])
    with pytest.raises(BundleError, match="manifest.sig: missing"):
        Policy.load(bundle, trusted_keys=[public])


def test_tampered_and_rehashed_bundle_is_refused(bundle, keys):
    """An edited contract with the manifest re-hashed passes the sha256 check, not the signature."""
    (private, public), _ = keys
    sign_bundle(bundle, private)
    c = json.loads((bundle / "contract.json").read_text())
    c["action"]["high"] = [1e5, 1e5, 1e5]
    (bundle / "contract.json").write_text(json.dumps(c))
    _rehash(bundle, "contract.json")
    verify_bundle(bundle, [])  # integrity alone is satisfied
    with pytest.raises(BundleError, match=r"signature by key \w+ does not match manifest.json .*changed after"):
        verify_bundle(bundle, [public])


def test_wrong_key_is_refused(bundle, keys):
    (_, ours), (theirs_private, _) = keys
    kid = sign_bundle(bundle, theirs_private)
    with pytest.raises(BundleError, match=rf"signed by key '{kid}', which this robot does not trust"):
        verify_bundle(bundle, [ours])


def test_forged_key_id_is_refused(bundle, keys):
    (private, public), (theirs_private, _) = keys
    sign_bundle(bundle, theirs_private)
    sig = json.loads((bundle / "manifest.sig").read_text())
    sig["key_id"] = key_id(load_public_key(public))  # claims to be ours
    (bundle / "manifest.sig").write_text(json.dumps(sig))
    with pytest.raises(BundleError, match="does not match manifest.json"):
        verify_bundle(bundle, [public])


@pytest.mark.parametrize("text", ["", "{", "[]", '{"format": "edgerl-signature", "algorithm": "ed25519"}',
                                  '{"format": "edgerl-signature", "algorithm": "ed25519", "key_id": "x", "signature": "!!"}'])
def test_garbage_signature_is_refused(bundle, keys, text):
    (_, public), _ = keys
    (bundle / "manifest.sig").write_text(text)
    with pytest.raises(BundleError, match="manifest.sig: not an edgerl Ed25519 signature"):
        verify_bundle(bundle, [public])


def test_machine_keys_from_the_environment(bundle, keys, monkeypatch, tmp_path):
    (private, public), _ = keys
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(public.parent))  # a folder of *.pub
    with pytest.raises(BundleError, match="manifest.sig: missing"):
        verify_bundle(bundle)
    sign_bundle(bundle, private)
    assert verify_bundle(bundle)["signed_by"]
    monkeypatch.setenv(TRUSTED_KEYS_ENV, str(tmp_path / "missing.pub"))  # a misconfigured robot refuses
    with pytest.raises(BundleError, match=r"trusted key .*missing.pub cannot be read"):
        verify_bundle(bundle)


def test_not_a_key(tmp_path, bundle):
    (tmp_path / "k.pub").write_text("hello")
    with pytest.raises(BundleError, match="is not a PEM public key"):
        verify_bundle(bundle, [tmp_path / "k.pub"])


def test_runtime_cli_trusted_key_keygen_and_sign(bundle, tmp_path, capsys):
    key = tmp_path / "k"
    assert runtime_main(["keygen", str(key)]) == 0
    assert runtime_main(["verify", str(bundle), "--trusted-key", f"{key}.pub"]) == 1
    assert "manifest.sig: missing" in capsys.readouterr().err
    assert runtime_main(["sign", str(bundle), "--key", str(key)]) == 0
    assert runtime_main(["verify", str(bundle), "--trusted-key", f"{key}.pub"]) == 0
    assert "signed by trusted key" in capsys.readouterr().out


def test_write_bundle_signs_and_an_unsigned_rewrite_drops_the_signature(make_bundle, keys, tmp_path):
    (private, public), _ = keys
    out = make_bundle(sign_key=private, out_dir=tmp_path / "b")
    assert verify_bundle(out, [public])["signed_by"] == key_id(load_public_key(public))
    make_bundle(out_dir=out, overwrite=True)
    assert not (out / "manifest.sig").exists()
    with pytest.raises(BundleError, match="manifest.sig: missing"):
        verify_bundle(out, [public])


def test_no_verify_is_refused_where_keys_are_trusted(bundle, keys, capsys):
    (_, public), _ = keys
    assert runtime_main(["check", str(bundle), "--no-verify", "--trusted-key", str(public), "-n", "1"]) == 1
    assert "--no-verify is refused" in capsys.readouterr().err

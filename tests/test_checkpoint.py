"""Checkpoint files: round trip, and a clear one-line error for every kind of bad file."""

from __future__ import annotations

import pytest
import torch

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from edgerl.errors import CheckpointError
from tests.conftest import run_cli


def _payload(agent: SACAgent) -> dict:
    return {"kind": "train", "algo": "sac", "env": {"id": "X"}, "config": {}, "agent": agent.state()}


def test_agent_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    agent = SACAgent(SACConfig(hidden=[8, 8]), 3, 2)
    batch = {"obs": torch.randn(4, 3), "actions": torch.rand(4, 2), "rewards": torch.randn(4),
             "next_obs": torch.randn(4, 3), "terminated": torch.zeros(4)}
    agent.update(batch)
    save_checkpoint(tmp_path / "ckpt.pt", _payload(agent))
    data = load_checkpoint(tmp_path / "ckpt.pt")
    # The file is readable with weights_only=True (no code runs on load).
    assert torch.load(tmp_path / "ckpt.pt", weights_only=True)["format"] == FORMAT
    other = SACAgent(SACConfig(hidden=[8, 8]), 3, 2)
    other.load_state(data["agent"])
    obs = torch.randn(5, 3)
    torch.testing.assert_close(other.actor(obs)[0], agent.actor(obs)[0], rtol=0, atol=0)
    assert other.updates == agent.updates
    st_a, st_b = agent.critic_opt.state_dict(), other.critic_opt.state_dict()
    for k in st_a["state"]:
        torch.testing.assert_close(st_a["state"][k]["exp_avg"], st_b["state"][k]["exp_avg"])
    # Training goes on from the restored optimizer state.
    other.update(batch)


def test_rebuilds_pruned_widths_from_spec(tmp_path):
    agent = SACAgent(SACConfig(hidden=[8, 8]), 3, 2)
    state = agent.state()
    spec = state["nets"]["actor"]["spec"]
    spec["kwargs"]["hidden"] = [5, 3]
    from edgerl.nets import build_net

    net = build_net(spec)
    assert [m.out_features for m in net.trunk if isinstance(m, torch.nn.Linear)] == [5, 3]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "pickled_module", "foreign", "version"])
def test_bad_checkpoints_give_a_clear_error(tmp_path, damage):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, _payload(SACAgent(SACConfig(hidden=[8]), 3, 2)))
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x80\x02hello" * 100)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "pickled_module":
        torch.save({"format": FORMAT, "net": torch.nn.Linear(2, 2)}, path)
    elif damage == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    elif damage == "version":
        data = torch.load(path, weights_only=True)
        data["format_version"] = 99
        torch.save(data, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")


def test_cli_reports_bad_checkpoint_in_one_line(tmp_path):
    (tmp_path / "ckpt.pt").write_bytes(b"not a checkpoint")
    proc = run_cli("train", "--resume", str(tmp_path), check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "ckpt.pt" in proc.stderr


# ------------------------------------------------------------------ integrity (issue 12, item 3)
def _small_ckpt(path):
    torch.manual_seed(0)
    save_checkpoint(path, _payload(SACAgent(SACConfig(hidden=[8]), 3, 2)))
    return path.read_bytes()


def _central_directory_offsets(raw: bytes) -> list[int]:
    """Offsets of each zip central-directory record's external attributes (bytes 38..41)."""
    offsets, i = [], raw.find(b"PK\x01\x02")
    while i >= 0:
        offsets.append(i + 38)
        i = raw.find(b"PK\x01\x02", i + 4)
    return offsets


def test_flipped_bytes_are_an_error_or_change_nothing(tmp_path):
    from edgerl.checkpoint import content_digest

    raw = _small_ckpt(tmp_path / "ckpt.pt")
    want = content_digest(load_checkpoint(tmp_path / "ckpt.pt"))
    cd = raw.find(b"PK\x01\x02")
    # Every 61st byte of the members (tensor data, data.pkl, local headers), every 11th of the
    # central directory, and each record's attribute bytes (where torch.load silently misreads).
    offsets = sorted({*range(0, cd, 61), *range(cd, len(raw), 11), *_central_directory_offsets(raw)})
    bad = tmp_path / "flipped.pt"
    outcomes = {"error": 0, "same": 0}
    for off in offsets:
        flipped = bytearray(raw)
        flipped[off] ^= 0x5A
        bad.write_bytes(bytes(flipped))
        try:
            got = content_digest(load_checkpoint(bad))
        except CheckpointError as e:
            assert "\n" not in str(e) and str(bad) in str(e)
            outcomes["error"] += 1
            continue
        assert got == want, f"a flipped byte at offset {off} silently changed the checkpoint"
        outcomes["same"] += 1
    assert outcomes["error"] > 0.5 * len(offsets)


def test_torch_load_alone_misreads_a_flipped_directory_byte(tmp_path):
    """Why the digest exists: this flip passes every zip CRC, and torch.load returns other weights."""
    import io
    import zipfile

    from edgerl.checkpoint import content_digest

    raw = _small_ckpt(tmp_path / "ckpt.pt")
    ref = torch.load(io.BytesIO(raw), weights_only=True)
    changed = 0
    for off in _central_directory_offsets(raw):
        flipped = bytearray(raw)
        flipped[off] ^= 0x5A
        with zipfile.ZipFile(io.BytesIO(bytes(flipped))) as z:
            assert z.testzip() is None
        try:
            data = torch.load(io.BytesIO(bytes(flipped)), weights_only=True)
        except Exception:
            continue
        a, b = ref["agent"]["nets"]["actor"]["state"], data["agent"]["nets"]["actor"]["state"]
        changed += any(not torch.equal(a[k], b[k]) for k in a)
        # What torch reads then is memory it never filled: load_checkpoint refuses it, or (if that
        # memory happens to hold the right bytes) returns exactly the saved content.
        (tmp_path / "f.pt").write_bytes(bytes(flipped))
        try:
            got = load_checkpoint(tmp_path / "f.pt")
        except CheckpointError as e:
            assert "\n" not in str(e)
            continue
        assert content_digest(got) == content_digest(load_checkpoint(tmp_path / "ckpt.pt"))
    assert changed > 0


def _write_v1(path, data: dict) -> None:
    """A format-version-1 file as edgerl <= 0.x wrote it: no content digest."""
    torch.save({**{k: v for k, v in data.items() if k != "content_sha256"}, "format_version": 1}, path)


def test_version_1_checkpoints_still_load_and_are_checked_by_crc(tmp_path):
    _small_ckpt(tmp_path / "ckpt.pt")
    data = load_checkpoint(tmp_path / "ckpt.pt")
    assert data["format_version"] == 2 and len(data["content_sha256"]) == 64
    _write_v1(tmp_path / "v1.pt", data)
    old = load_checkpoint(tmp_path / "v1.pt")
    assert old["format_version"] == 1 and "content_sha256" not in old
    torch.testing.assert_close(old["agent"]["nets"]["actor"]["state"], data["agent"]["nets"]["actor"]["state"])
    raw = bytearray((tmp_path / "v1.pt").read_bytes())
    weights = data["agent"]["nets"]["actor"]["state"]["trunk.0.weight"].numpy().tobytes()
    at = bytes(raw).find(weights)
    assert at > 0
    raw[at + 5] ^= 0x01  # one bit of one weight
    (tmp_path / "v1.pt").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="CRC"):
        load_checkpoint(tmp_path / "v1.pt")


def test_edited_and_resaved_content_fails_the_digest(tmp_path):
    _small_ckpt(tmp_path / "ckpt.pt")
    data = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    data["agent"]["nets"]["actor"]["state"]["trunk.0.weight"][0, 0] += 0.087
    torch.save(data, tmp_path / "ckpt.pt")  # valid zip, valid CRCs, stale digest
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        load_checkpoint(tmp_path / "ckpt.pt")


@pytest.mark.parametrize("version", ["1", 1.0, None, 3, True])
def test_format_version_of_the_wrong_kind_says_so(tmp_path, version):
    _small_ckpt(tmp_path / "ckpt.pt")
    data = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    data["format_version"] = version
    torch.save(data, tmp_path / "ckpt.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "ckpt.pt")
    msg = str(err.value)
    assert "reads versions 1, 2" in msg and "\n" not in msg
    if not isinstance(version, int) or isinstance(version, bool):
        assert "not an integer" in msg

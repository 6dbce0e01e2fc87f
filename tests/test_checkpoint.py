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

"""``edgerl compact``: the compacted policy computes the same actions with fewer units."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.compact import compact_checkpoint
from edgerl.compact.units import remove_dead_units
from edgerl.export.policy import policy_from_checkpoint
from edgerl.nets.mlp import QNetwork, SquashedGaussianActor
from tests.conftest import TINY_SAC, run_cli

ENV = {"id": "Hopper-v5",
       "observation_space": {"kind": "box", "shape": [11], "dtype": "float64", "low": [None] * 11, "high": [None] * 11},
       "action_space": {"kind": "box", "shape": [3], "dtype": "float32", "low": [-1.0] * 3, "high": [1.0] * 3}}


def _train_ckpt(agent: SACAgent) -> dict:
    return {"kind": "train", "algo": "sac", "env": ENV, "config": {"algo": {"obs_norm": True}},
            "agent": agent.state(), "counters": {"global_step": 1}}


def _mask_units(actor: SquashedGaussianActor, rows: list[int], cols: list[int]) -> None:
    with torch.no_grad():
        actor.trunk[0].weight[rows] = 0  # units 0.. of layer 1 read nothing: constant relu(bias)
        actor.trunk[2].weight[:, cols] = 0  # units of layer 1 nobody reads


def test_dead_units_removed_and_constants_folded():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(11, 3, [16, 12])
    with torch.no_grad():
        actor.trunk[0].bias[:4] = torch.tensor([0.5, -0.3, 0.2, -1.0])  # two positive constants to fold
    _mask_units(actor, rows=[0, 1, 2, 3], cols=[5, 6])
    x = torch.randn(64, 11)
    before = actor(x)[0].clone()
    removed = remove_dead_units(actor, actor.example_inputs(), actor.heads())
    assert removed == {"trunk.0": 6}
    assert actor.spec()["hidden"] == [10, 12]
    torch.testing.assert_close(actor(x)[0], before, atol=1e-6, rtol=0)


def test_q_network_two_producers_group():
    torch.manual_seed(0)
    q = QNetwork(5, 2, [8, 6])
    with torch.no_grad():
        q.obs_in.weight[[1, 2]] = 0
        q.act_in.weight[[1, 2]] = 0
        q.obs_in.bias[1] = -0.5  # relu -> 0: removable without folding
        q.obs_in.bias[2] = 0.7   # folded into the next layer's bias
    o, a = torch.randn(32, 5), torch.randn(32, 2)
    before = q(o, a).clone()
    remove_dead_units(q, q.example_inputs(), q.heads())
    assert q.spec()["hidden"] == [6, 6]
    torch.testing.assert_close(q(o, a), before, atol=1e-6, rtol=0)


def test_compact_masked_checkpoint_matches_original():
    torch.manual_seed(0)
    agent = SACAgent(SACConfig(hidden=[32, 24], obs_norm=True), 11, 3)
    agent.normalizer.update(torch.randn(100, 11) * 3 + 1)
    _mask_units(agent.actor, rows=list(range(10)), cols=[20, 21])
    payload, report = compact_checkpoint(_train_ckpt(agent), recorded_steps=64)
    assert report.widths_after["actor"]["trunk.0"] == 32 - 12
    assert report.params_after < report.params_before
    assert report.macs_after < report.macs_before
    assert max(report.max_abs_diff.values()) <= 1e-5
    assert set(report.dropped) >= {"qf1", "qf2", "qf1_target", "qf2_target", "optimizers"}
    # The payload is a policy checkpoint with only the actor (+ normaliser).
    assert payload["kind"] == "policy" and set(payload["agent"]["nets"]) == {"actor"}
    obs = torch.randn(16, 11, dtype=torch.float32)
    torch.testing.assert_close(policy_from_checkpoint(payload)(obs), policy_from_checkpoint(_train_ckpt(agent))(obs),
                               atol=1e-6, rtol=0)


def test_compact_refuses_when_result_differs(monkeypatch):
    import edgerl.compact.api as api

    agent = SACAgent(SACConfig(hidden=[16, 16]), 11, 3)

    def sabotage(net, example_inputs, heads, activation=None):
        with torch.no_grad():
            net.trunk[0].bias += 1.0
        return {}

    monkeypatch.setattr(api, "remove_dead_units", sabotage)
    with pytest.raises(api.CompactCheckError, match="differs"):
        compact_checkpoint(_train_ckpt(agent), recorded_steps=0)


def test_compact_cli_on_pruned_run(tmp_path):
    out = tmp_path / "run"
    run_cli("train", *TINY_SAC, "--hidden", "48,40", "--prune", "gradual", "--final-ratio", "0.5",
            "--prune-every", "20", "--total-steps", "300", "--eval-every", "0", "--out", str(out))
    proc = run_cli("compact", str(out), "--json", str(tmp_path / "c.json"), "--recorded-steps", "50")
    assert "max |action difference|" in proc.stdout
    report = json.loads((tmp_path / "c.json").read_text())
    assert report["widths_after"]["actor"]["trunk.0"] == 24
    compact = load_checkpoint(out / "compact.pt")
    assert compact["kind"] == "policy" and "optim" not in compact["agent"]
    assert torch.load(out / "compact.pt", weights_only=True)["compact"]["params_after"] == report["params_after"]
    # A compacted checkpoint compacts again to itself.
    run_cli("compact", str(out / "compact.pt"), "-o", str(tmp_path / "again.pt"), "--recorded-steps", "0")
    again = load_checkpoint(tmp_path / "again.pt")
    assert again["compact"]["params_after"] == report["params_after"]
    assert np.isclose(again["compact"]["max_abs_diff"]["random"], 0.0)


def test_save_roundtrip_of_compacted_policy(tmp_path):
    agent = SACAgent(SACConfig(hidden=[8, 8]), 11, 3)
    payload, _ = compact_checkpoint(_train_ckpt(agent), recorded_steps=0)
    save_checkpoint(tmp_path / "p.pt", payload)
    assert load_checkpoint(tmp_path / "p.pt")["kind"] == "policy"


def test_compact_removes_masked_channels_of_image_nets():
    """Only channels dead in every coupled conv of a residual stream can go; inner convs always can."""
    from edgerl.compact.units import remove_dead_units
    from edgerl.nets.impala import ActorCriticCNN, image_encoder_spec

    torch.manual_seed(0)
    net = ActorCriticCNN(image_encoder_spec("impala", [3, 24, 24], 0.5, [32], False), 4).eval()
    with torch.no_grad():
        inner = net.encoder.stages[0].blocks[0].conv0
        inner.weight[:3] = 0
        inner.bias[:3] = 0
        net.encoder.stages[0].conv.weight[:2] = 0  # stream channels dead in one conv only: must stay
    x = torch.randint(0, 255, (8, 3, 24, 24), dtype=torch.uint8)
    before = [t.clone() for t in net(x)]
    removed = remove_dead_units(net, net.example_inputs(), net.heads())
    assert removed == {"encoder.stages.0.blocks.0.conv0": 3}
    assert net.encoder.stages[0].conv.out_channels == 8
    for a, b in zip(net(x), before, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)

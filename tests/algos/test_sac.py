"""SAC pieces: the squashed log-probability, Polyak targets, and the learning step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgerl.algos.replay import ReplayBuffer
from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.errors import CheckpointError
from edgerl.nets.mlp import ObsNormalizer, SquashedGaussianActor


def test_squashed_log_prob_matches_change_of_variables():
    torch.manual_seed(0)
    actor = SquashedGaussianActor(5, 3, [16])
    obs = torch.randn(64, 5)
    torch.manual_seed(1)
    a, logp = actor.sample(obs)
    # Reference in float64: recover the pre-squash sample and apply the change of variables.
    mean, log_std = (t.double() for t in actor(obs))
    u = torch.atanh(a.double().clamp(-1 + 1e-12, 1 - 1e-12))
    base = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(-1)
    ref = base - torch.log(1 - torch.tanh(u) ** 2).sum(-1)
    mask = a.abs().max(-1).values < 0.999  # atanh is ill-conditioned at the bounds
    assert mask.sum() > 32
    torch.testing.assert_close(logp.double()[mask], ref[mask], atol=2e-4, rtol=1e-4)


def test_squashed_density_integrates_to_one_in_1d():
    actor = SquashedGaussianActor(1, 1, [4])
    with torch.no_grad():
        actor.mean.weight.zero_()
        actor.mean.bias.fill_(0.3)
        actor.log_std.weight.zero_()
        actor.log_std.bias.fill_(0.2)
    # Density of a = tanh(u) evaluated on a grid through the same formula as sample().
    mean, log_std = actor(torch.zeros(1, 1))
    a = torch.linspace(-0.9999, 0.9999, 200001, dtype=torch.float64)
    u = torch.atanh(a)
    logp = (-0.5 * ((u - mean.double()) / log_std.double().exp()) ** 2 - log_std.double()
            - 0.5 * math.log(2 * math.pi)) - 2 * (math.log(2) - u - torch.nn.functional.softplus(-2 * u))
    integral = torch.trapezoid(logp.exp().squeeze(), a).item()
    assert abs(integral - 1.0) < 1e-3


def _agent(**kw) -> SACAgent:
    cfg = SACConfig(hidden=[16, 16], batch_size=8, **kw)
    torch.manual_seed(0)
    return SACAgent(cfg, obs_dim=4, act_dim=2)


def _batch(n: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {"obs": torch.randn(n, 4, generator=g), "actions": torch.rand(n, 2, generator=g) * 2 - 1,
            "rewards": torch.randn(n, generator=g), "next_obs": torch.randn(n, 4, generator=g),
            "terminated": (torch.rand(n, generator=g) < 0.2).float()}


def test_polyak_target_update():
    agent = _agent(tau=0.1)
    old_target = [p.clone() for p in agent.qf1_target.parameters()]
    agent.update(_batch())
    for t, old, online in zip(agent.qf1_target.parameters(), old_target, agent.qf1.parameters(), strict=True):
        torch.testing.assert_close(t, 0.9 * old + 0.1 * online)


def test_update_changes_all_networks_and_tunes_alpha():
    agent = _agent()
    before = {n: [p.clone() for p in getattr(agent, n).parameters()] for n in ("actor", "qf1", "qf2")}
    alpha0 = agent.alpha().item()
    metrics = agent.update(_batch())
    for n, params in before.items():
        assert any(not torch.equal(a, b) for a, b in zip(params, getattr(agent, n).parameters(), strict=True)), n
    assert agent.alpha().item() != alpha0
    assert set(metrics) >= {"qf_loss", "actor_loss", "alpha", "entropy"}
    assert all(torch.isfinite(v).all() for v in metrics.values())


def test_fixed_alpha_is_not_tuned():
    agent = _agent(alpha=0.2)
    agent.update(_batch())
    assert agent.alpha().item() == pytest.approx(0.2)
    assert agent.log_alpha.item() == 0.0


def test_replay_buffer_wraps_and_reloads_in_order(tmp_path):
    buf = ReplayBuffer(5, (2,), (1,))
    for i in range(7):
        buf.add(np.full(2, i), np.full(1, i), float(i), np.full(2, i + 1), i == 6)
    assert buf.size == 5 and buf.pos == 2
    assert sorted(buf.rewards.tolist()) == [2, 3, 4, 5, 6]
    assert buf.obs[0, 0] == 5 and buf.obs[1, 0] == 6  # overwritten oldest first
    buf.save(tmp_path / "r.npz")
    bigger = ReplayBuffer(10, (2,), (1,))
    bigger.load(tmp_path / "r.npz")
    assert bigger.size == 5 and bigger.pos == 5
    assert bigger.rewards[:5].tolist() == [2, 3, 4, 5, 6]  # chronological
    assert bigger.terminated[:5].tolist() == [0, 0, 0, 0, 1]
    batch = bigger.sample(64, np.random.default_rng(0))
    assert set(batch["rewards"].tolist()) <= {2.0, 3.0, 4.0, 5.0, 6.0}
    smaller = ReplayBuffer(3, (2,), (1,))
    smaller.load(tmp_path / "r.npz")
    assert smaller.rewards.tolist() == [4, 5, 6]  # keeps the newest


def test_normalizer_matches_numpy_statistics():
    norm = ObsNormalizer((3,))
    data = np.random.default_rng(0).normal(5.0, 2.0, size=(1000, 3))
    for chunk in np.array_split(data, 7):
        norm.update(torch.as_tensor(chunk))
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-4)
    out = norm(torch.as_tensor(data, dtype=torch.float32))
    assert abs(out.mean().item()) < 1e-3 and abs(out.std().item() - 1) < 1e-2


def test_bf16_autocast_update_tracks_the_fp32_update():
    """Same networks, same batch, same noise: the bf16 update's losses and new weights stay within
    bf16 rounding of the fp32 ones (targets and losses are computed in fp32)."""
    agents = {}
    for precision in ("none", "bf16"):
        torch.manual_seed(0)
        agents[precision] = SACAgent(SACConfig(hidden=[64, 64], autocast=precision), obs_dim=4, act_dim=2)
    batch = _batch(64)
    before = [p.detach().clone() for p in agents["none"].actor.parameters()]
    metrics = {}
    for precision, agent in agents.items():
        torch.manual_seed(7)
        metrics[precision] = agent.update(batch)
    for key in ("qf_loss", "actor_loss", "entropy"):
        a, b = metrics["none"][key], metrics["bf16"][key]
        assert a.dtype == b.dtype == torch.float32 and torch.isfinite(b)
        assert abs(float(a - b)) <= 0.05 * abs(float(a)) + 1e-2, (key, float(a), float(b))
    # Adam's first step is about lr * sign(gradient): the two updates must move the same way.
    step32 = torch.cat([(p - b).flatten() for p, b in zip(agents["none"].actor.parameters(), before, strict=True)])
    step16 = torch.cat([(p - b).flatten() for p, b in zip(agents["bf16"].actor.parameters(), before, strict=True)])
    moved = step32.abs() > 1e-5
    agree = (torch.sign(step16[moved]) == torch.sign(step32[moved])).float().mean()
    assert moved.sum() > 1000 and agree >= 0.9, float(agree)


@pytest.mark.parametrize("ofenet", [False, True], ids=["mlp", "ofenet"])
def test_agent_from_a_train_checkpoint_is_the_saved_agent(ofenet: bool):
    from edgerl.config import to_dict
    from edgerl.prune import prune_once

    torch.manual_seed(0)
    agent = SACAgent(SACConfig(hidden=[16, 12], obs_norm=True, ofenet=ofenet, ofenet_layers=2, ofenet_units=4), 4, 2)
    prune_once(agent.actor, agent.actor.example_inputs(), 0.5)  # saved widths differ from the config's
    agent.after_surgery()
    agent.make_optimizers()
    ckpt = {"kind": "train", "algo": "sac", "config": {"algo": to_dict(agent.cfg)}, "agent": agent.state(),
            "env": {"observation_space": {"shape": [4]}, "action_space": {"shape": [2]}}}
    again = SACAgent.from_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="holds no SAC agent"):
        SACAgent.from_checkpoint({**ckpt, "kind": "policy"})
    assert again.cfg == agent.cfg and again.actor.spec()["hidden"] == [8, 6]
    for name in ("actor", "qf1", "qf2_target", *(["ofenet"] if ofenet else [])):
        a, b = getattr(agent, name).state_dict(), getattr(again, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name

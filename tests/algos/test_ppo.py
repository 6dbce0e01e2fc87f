"""PPO pieces: GAE against a hand computation, the return normaliser, the learning step, and
the checkpoint round trip of a pruned agent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgerl.algos.ppo import PPOAgent, PPOConfig, ReturnNormalizer, compute_gae

OBS = (4, 36, 36)


def test_gae_matches_hand_computation():
    # Env 0: an episode ends after step 1. Env 1: no end, sparse reward.
    rewards = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]])
    values = torch.tensor([[0.5, 0.0], [1.0, 0.0], [1.5, 0.0]])
    dones = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    last_value = torch.tensor([2.0, 0.0])
    adv, ret = compute_gae(rewards, values, dones, last_value, gamma=0.9, lam=0.8)
    # env 0: d2 = 3 + .9*2 - 1.5 = 3.3; d1 = 2 - 1 (no bootstrap past the end) = 1;
    #        d0 = 1 + .9*1 - .5 = 1.4, A0 = 1.4 + .72*1 = 2.12
    # env 1: A2 = 1, A1 = .72, A0 = .72^2
    expected = torch.tensor([[2.12, 0.5184], [1.0, 0.72], [3.3, 1.0]])
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values)


def test_gae_with_lambda_one_is_the_discounted_return():
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(6, 1, generator=g), torch.randn(6, 1, generator=g)
    adv, ret = compute_gae(rewards, values, torch.zeros(6, 1), torch.tensor([0.5]), gamma=0.9, lam=1.0)
    mc = [sum(0.9**j * rewards[t + j, 0].item() for j in range(6 - t)) + 0.9 ** (6 - t) * 0.5 for t in range(6)]
    torch.testing.assert_close(ret[:, 0], torch.tensor(mc))


def test_return_normalizer_tracks_the_variance_of_discounted_returns():
    rng = np.random.default_rng(0)
    norm = ReturnNormalizer(num_envs=3, gamma=0.9)
    returns, seen = np.zeros(3), []
    for _ in range(200):
        r = rng.normal(1.0, 2.0, 3)
        dones = rng.random(3) < 0.1
        out = norm(r, dones)
        returns = returns * 0.9 + r
        seen.append(returns.copy())
        returns[dones] = 0.0
        np.testing.assert_allclose(out, np.clip(r / np.sqrt(norm.var + 1e-8), -10, 10), rtol=1e-5)
    assert norm.var == pytest.approx(np.var(np.concatenate(seen)), rel=1e-3)
    restored = ReturnNormalizer(3, 0.9)
    restored.load_state_dict(norm.state_dict())
    r = rng.normal(size=3)
    np.testing.assert_array_equal(restored(r, np.zeros(3, bool)), norm(r, np.zeros(3, bool)))


def _agent(**kw) -> PPOAgent:
    torch.manual_seed(0)
    cfg = PPOConfig(width=0.25, hidden=[16], num_envs=2, num_minibatches=2, update_epochs=4, **kw)
    return PPOAgent(cfg, OBS, n_actions=3)


def _batch(n: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    obs = torch.randint(0, 256, (n, *OBS), dtype=torch.uint8, generator=g)
    actions = torch.randint(0, 3, (n,), generator=g)
    return {"obs": obs, "actions": actions, "advantages": torch.where(actions == 0, 1.0, -1.0),
            "returns": torch.randn(n, generator=g), "values": torch.zeros(n)}


def test_update_favours_actions_with_positive_advantage():
    agent = _agent(ent_coef=0.0, lr=3e-3)
    batch = _batch()
    with torch.no_grad():
        logits, _ = agent.net(batch["obs"])
        batch["logprobs"] = torch.distributions.Categorical(logits=logits).log_prob(batch["actions"])
        p0_before = logits.softmax(-1)[:, 0].mean()
    metrics = agent.update(batch)
    with torch.no_grad():
        p0_after = agent.net(batch["obs"])[0].softmax(-1)[:, 0].mean()
    assert p0_after > p0_before + 0.01
    assert agent.updates == 1
    assert set(metrics) >= {"loss", "actor_loss", "value_loss", "entropy", "approx_kl", "clipfrac"}
    assert all(torch.isfinite(v) for v in metrics.values())


def test_prunable_shares_one_network_and_keeps_heads():
    agent = _agent()
    nets = agent.prunable()
    assert list(nets) == ["net"]
    entry = nets["net"]
    assert entry["model"] is agent.net and entry["twins"] == []
    assert entry["heads"] == [agent.net.actor, agent.net.critic]
    assert entry["example_inputs"][0].dtype == torch.uint8 and entry["example_inputs"][0].shape[1:] == OBS
    assert agent.deployed_nets() == {"policy": agent.net}


def test_pruned_agent_round_trips_through_its_state():
    from edgerl.prune.graph import PruneGraph

    agent = _agent()
    batch = _batch()
    batch["logprobs"] = torch.zeros(16)
    agent.update(batch)  # Adam has moments to carry
    entry = agent.prunable()["net"]
    graph = PruneGraph(entry["model"], entry["example_inputs"], keep=entry["heads"])
    for g in graph.groups():
        graph.prune(g.key, [0], [agent.optimizer])
    agent.after_surgery()
    agent.update(batch)  # the optimizer steps the pruned parameters

    clone = _agent()
    clone.load_state(agent.state())
    assert clone.net.spec() == agent.net.spec()
    assert clone.net.spec()["encoder"]["kwargs"]["channels"] == [[3, 3, 3], [7, 7, 7], [7, 7, 7]]
    obs = batch["obs"][:4]
    for a, b in zip(agent.net(obs), clone.net(obs), strict=True):
        torch.testing.assert_close(a, b)
    # Adam's moments come back at the pruned shapes, in parameter order.
    mine, theirs = agent.optimizer.state_dict(), clone.optimizer.state_dict()
    assert mine["param_groups"] == theirs["param_groups"] and len(mine["state"]) == 36
    for i, state in mine["state"].items():
        for key, value in state.items():
            torch.testing.assert_close(theirs["state"][i][key], value)

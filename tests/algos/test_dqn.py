"""DQN pieces: n-step returns against a hand computation, the frame replay against a real ALE
env's stacks, the sum tree, prioritized bookkeeping, replay persistence and the learning step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgerl.algos.atari import final_observations, make_vector_env
from edgerl.algos.dqn import DQNAgent, DQNConfig, FrameReplay, nstep_returns
from edgerl.algos.prioritized import SumTree

ENV = "ALE/Breakout-v5"


def test_nstep_returns_match_hand_computation():
    g = 0.5
    rewards = np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0]], dtype=np.float32)
    terminated = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=bool)
    truncated = np.array([[0, 0, 0], [0, 0, 0], [0, 1, 1], [0, 0, 0]], dtype=bool)
    returns, discount, steps, cut = nstep_returns(rewards, terminated, truncated, g)
    # no end: 1 + .5*2 + .25*4 = 3, bootstrap gamma^3; terminated at step 2: 1 + 1 = 2, no bootstrap;
    # truncated at step 2: 2, bootstrap from that episode's last obs with gamma^2; terminated at once: 1.
    np.testing.assert_allclose(returns, [3.0, 2.0, 2.0, 1.0])
    np.testing.assert_allclose(discount, [0.125, 0.0, 0.25, 0.0])
    np.testing.assert_array_equal(steps, [3, 2, 2, 1])
    np.testing.assert_array_equal(cut, [False, False, True, False])


def _cfg(**kw) -> DQNConfig:
    base = {"frame_size": 32, "max_episode_steps": 9, "noop_max": 3, "num_envs": 2, "width": 0.25,
            "hidden": [16], "n_step": 3}
    return DQNConfig(**{**base, **kw})


def _collect(cfg: DQNConfig, steps: int, capacity: int, prioritized: bool = False, seed: int = 0):
    """Run random actions in real envs into a FrameReplay; record every stack the env produced."""
    envs = make_vector_env(ENV, cfg, cfg.num_envs, seed=seed)
    obs, _ = envs.reset(seed=seed)
    buf = FrameReplay(capacity, cfg.num_envs, obs.shape[1:], cfg.frame_stack, cfg.n_step, cfg.gamma, prioritized)
    rng = np.random.default_rng(seed)
    first = np.ones(cfg.num_envs, bool)
    record = []  # per step: obs, reward, terminated, truncated, final obs
    for _ in range(steps):
        actions = rng.integers(0, envs.single_action_space.n, cfg.num_envs)
        nxt, r, term, trunc, info = envs.step(actions)
        final = final_observations(info, term | trunc, nxt)
        buf.add(obs, actions, r, term, trunc, first, final)
        record.append((obs.copy(), r.copy(), term.copy(), trunc.copy(), final.copy()))
        obs, first = nxt, term | trunc
    envs.close()
    return buf, record, obs


def _expected(record, t: int, e: int, n: int, gamma: float):
    """n-step return, discount and bootstrap observation, by walking the recorded episode."""
    total, k = 0.0, 0
    while True:
        _, r, term, trunc, final = record[t + k]
        total += gamma**k * r[e]
        k += 1
        if term[e]:
            return total, 0.0, None
        if trunc[e]:
            return total, gamma**k, final[e]
        if k == n:
            return total, gamma**n, record[t + n][0][e]


@pytest.mark.parametrize("prioritized", [False, True])
def test_frame_replay_rebuilds_the_env_stacks_and_nstep_targets(prioritized):
    cfg = _cfg()
    buf, record, _ = _collect(cfg, steps=40, capacity=2 * 24, prioritized=prioritized)  # wraps: 24 slots
    assert buf.t == 40 and buf.size == 48
    lo, hi = buf.valid_range()
    assert (lo, hi) == (40 - 24 + 3, 40 - 1 - 3)
    ends = sum(int((rec[2] | rec[3]).sum()) for rec in record)
    assert ends >= 6 and buf.final  # short episodes: stacks cross resets, truncations kept aside
    batch = buf.sample(256, np.random.default_rng(1), beta=0.4)
    idx = batch["index"].numpy()
    newest = buf.t - 1
    for i in range(256):
        slot, e = divmod(int(idx[i]), buf.N)
        t = newest - (newest - slot) % buf.T
        assert lo <= t <= hi
        np.testing.assert_array_equal(batch["obs"][i].numpy(), record[t][0][e])
        assert batch["actions"][i] == buf.actions[slot, e]
        ret, disc, nxt = _expected(record, t, e, cfg.n_step, cfg.gamma)
        assert batch["returns"][i].item() == pytest.approx(ret, rel=1e-6)
        assert batch["discount"][i].item() == pytest.approx(disc, rel=1e-6)
        if nxt is not None:
            np.testing.assert_array_equal(batch["next_obs"][i].numpy(), nxt)
    assert len(set(idx.tolist())) > 20
    if prioritized:
        # Exactly the sampleable transitions carry priority.
        leaves = buf.tree.get(np.arange(buf.T * buf.N)).reshape(buf.T, buf.N)
        valid = np.zeros(buf.T, bool)
        valid[np.arange(lo, hi + 1) % buf.T] = True
        assert (leaves[valid] > 0).all() and (leaves[~valid] == 0).all()
        assert batch["weights"].max() == 1.0
    else:
        assert torch.equal(batch["weights"], torch.ones(256))


def test_sum_tree_samples_proportionally_and_updates_batches():
    tree = SumTree(5)
    tree.set(np.arange(5), [1.0, 0.0, 3.0, 0.0, 4.0])
    assert tree.total == 8.0
    tree.set([4, 4], [4.0, 6.0])  # duplicates: last write wins, sums follow
    assert tree.total == 10.0 and tree.get([4])[0] == 6.0
    counts = np.bincount(tree.sample(20_000, np.random.default_rng(0)), minlength=5)
    np.testing.assert_allclose(counts / 20_000, [0.1, 0.0, 0.3, 0.0, 0.6], atol=0.01)
    assert tree.find(np.array([0.0, 0.999, 1.0, 3.999, 4.0, 9.999])).tolist() == [0, 0, 2, 2, 4, 4]


def test_prioritized_sampling_follows_td_errors():
    buf, _, _ = _collect(_cfg(), steps=20, capacity=2 * 24, prioritized=True)
    rng = np.random.default_rng(0)
    batch = buf.sample(64, rng)
    hot = int(batch["index"][-1])
    td = torch.where(batch["index"] == hot, 100.0, 0.0)  # one transition becomes far more likely
    buf.update_priorities(batch["index"], td)
    again = buf.sample(256, rng, beta=1.0)
    assert (again["index"] == hot).float().mean() > 0.5
    weights = again["weights"][again["index"] == hot]
    assert torch.all(weights < again["weights"].max())  # importance weights undo the bias


def test_replay_save_load_round_trip_and_resume_boundary(tmp_path):
    cfg = _cfg(max_episode_steps=50)
    buf, record, pending = _collect(cfg, steps=30, capacity=2 * 20, prioritized=True)
    buf.save(tmp_path / "r.npz", pending)
    other = FrameReplay(2 * 20, 2, buf.obs_shape, cfg.frame_stack, cfg.n_step, cfg.gamma, prioritized=True)
    other.load(tmp_path / "r.npz")
    assert other.t == buf.t
    for name in ("frames", "actions", "rewards", "terminated", "first"):
        np.testing.assert_array_equal(getattr(other, name), getattr(buf, name))
    # The newest step of each running episode ends as a truncation onto the saved observation.
    newest = (buf.t - 1) % buf.T
    running = ~(buf.terminated[newest] | buf.truncated[newest])
    assert running.any() and other.truncated[newest, running].all()
    for e in np.flatnonzero(running):
        np.testing.assert_array_equal(other.final[buf.t - 1][int(e)], pending[e, -1:])
    lo, hi = other.valid_range()
    np.testing.assert_array_equal(other.tree.get(np.arange(40)), buf.tree.get(np.arange(40)))
    a, b = buf.sample(32, np.random.default_rng(3)), other.sample(32, np.random.default_rng(3))
    assert torch.equal(a["index"], b["index"]) and torch.equal(a["obs"], b["obs"])


def test_double_dqn_update_and_target_sync():
    torch.manual_seed(0)
    cfg = _cfg(lr=1e-3)
    buf, _, _ = _collect(cfg, steps=20, capacity=2 * 24)
    agent = DQNAgent(cfg, buf.obs_shape, n_actions=4)
    batch = buf.sample(16, np.random.default_rng(0))
    with torch.no_grad():  # double Q: online argmax, target value
        agent.target_network.q.bias.add_(torch.tensor([0.0, 0.0, 0.0, 5.0]))
        next_a = agent.q_network(batch["next_obs"]).argmax(-1)
        y = batch["returns"] + batch["discount"] * agent.target_network(batch["next_obs"]).gather(1, next_a[:, None])[:, 0]
        q = agent.q_network(batch["obs"]).gather(1, batch["actions"][:, None])[:, 0]
    metrics = agent.update(batch)
    torch.testing.assert_close(metrics["td_abs"], (y - q).abs())
    torch.testing.assert_close(metrics["qf_loss"], torch.nn.functional.smooth_l1_loss(q, y))
    assert not torch.equal(agent.q_network.q.weight, agent.target_network.q.weight)
    assert all(not p.requires_grad for p in agent.target_network.parameters())
    agent.sync_target()
    assert torch.equal(agent.q_network(batch["obs"]), agent.target_network(batch["obs"]))
    entry = agent.prunable()["q_network"]
    assert entry["model"] is agent.q_network and entry["twins"] == [agent.target_network]
    assert entry["heads"] == [agent.q_network.q]


def test_pruned_dqn_agent_round_trips_with_its_twin():
    from edgerl.prune.graph import PruneGraph

    torch.manual_seed(0)
    agent = DQNAgent(_cfg(), (4, 32, 32), n_actions=4)
    entry = agent.prunable()["q_network"]
    graph = PruneGraph(entry["model"], entry["example_inputs"], keep=entry["heads"], twins=entry["twins"])
    for g in graph.groups():
        graph.prune(g.key, [1], [agent.optimizer])
    agent.after_surgery()
    obs = torch.randint(0, 256, (3, 4, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(agent.q_network(obs), agent.target_network(obs))
    clone = DQNAgent(_cfg(), (4, 32, 32), n_actions=4)
    clone.load_state(agent.state())
    assert clone.q_network.spec() == agent.q_network.spec() == clone.target_network.spec()
    torch.testing.assert_close(clone.target_network(obs), agent.target_network(obs))
    clone.sync_target()  # twins stay loadable into each other after pruning


def test_episodic_life_ends_episodes_at_a_lost_life_but_not_the_game():
    from edgerl.algos.atari import make_image_env

    env = make_image_env(ENV, _cfg(max_episode_steps=0, sticky_actions=0.0), train=True, seed=0)
    env.reset(seed=0)
    ale = env.unwrapped.ale
    rng = np.random.default_rng(0)
    lives = ale.lives()
    for _ in range(2000):
        obs, r, term, trunc, _ = env.step(int(rng.integers(4)))
        assert r in (-1.0, 0.0, 1.0)  # clipped for training
        if term:
            break
    assert term and 0 < ale.lives() < lives  # a life went, the game did not
    frames_before = ale.getEpisodeFrameNumber()
    obs, _ = env.reset()
    assert ale.lives() == lives - 1 and ale.getEpisodeFrameNumber() > frames_before  # same game goes on
    assert obs.shape == (4, 32, 32) and all(np.array_equal(obs[0], f) for f in obs)  # stack padded with the reset frame
    env.close()

"""Devices: ``--device`` resolution, the SAC loop against the single-env loop it replaced (bit for
bit on the CPU), the device replay buffer, and CUDA runs that resume on the CPU (``gpu``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgerl.algos.agent import resolve_device, to_cpu
from edgerl.algos.replay import DeviceReplayBuffer, ReplayBuffer
from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.algos.sac_train import train_sac
from edgerl.checkpoint import load_checkpoint
from edgerl.config import PruneConfig, RunConfig
from edgerl.envs import make_env
from edgerl.errors import ConfigError
from tests.conftest import run_cli

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False here)")


def test_auto_picks_cuda_only_where_it_exists():
    assert resolve_device("auto") == torch.device("cuda" if CUDA else "cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    with pytest.raises(ConfigError, match="choose auto, cpu"):
        resolve_device("tpu")
    if not CUDA:
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")


def _tiny(out, **kw) -> tuple[RunConfig, SACConfig]:
    run = RunConfig(env="Pendulum-v1", total_steps=kw.pop("total_steps", 300), seed=5, out=str(out), eval_every=0, eval_episodes=1,
                    checkpoint_every=0, progress=False, device="cpu")
    cfg = SACConfig(**{"hidden": [16, 16], "batch_size": 16, "learning_starts": 100, "obs_norm": True, **kw})
    return run, cfg


def _reference_sac(run: RunConfig, cfg: SACConfig) -> SACAgent:
    """The single-env loop as it was before devices and vector envs (learning part only)."""
    torch.set_num_threads(run.threads)
    torch.manual_seed(run.seed)
    rng = np.random.default_rng(run.seed)
    env = make_env(run.env, seed=run.seed)
    low, high = env.action_space.low, env.action_space.high
    agent = SACAgent(cfg, 3, 1)
    buffer = ReplayBuffer(min(cfg.buffer_size, run.total_steps), (3,), (1,))
    obs, _ = env.reset(seed=run.seed)
    agent.normalizer.update(torch.as_tensor(obs).unsqueeze(0))
    for step in range(1, run.total_steps + 1):
        a = rng.uniform(-1.0, 1.0, 1).astype(np.float32) if step - 1 < cfg.learning_starts else agent.act(obs)
        next_obs, reward, terminated, truncated, _ = env.step(low + (a + 1.0) * 0.5 * (high - low))
        buffer.add(obs, a, reward, next_obs, terminated)
        agent.normalizer.update(torch.as_tensor(next_obs).unsqueeze(0))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
        if step >= cfg.learning_starts and buffer.size >= cfg.batch_size:
            agent.update(buffer.sample(cfg.batch_size, rng))
    env.close()
    return agent


def test_cpu_loop_is_bit_identical_to_the_single_env_loop(tmp_path):
    run, cfg = _tiny(tmp_path / "run", total_steps=180)
    train_sac(run, cfg, PruneConfig())
    ref = _reference_sac(run, cfg)
    saved = load_checkpoint(tmp_path / "run" / "ckpt.pt")["agent"]
    assert saved["updates"] == ref.updates == run.total_steps - cfg.learning_starts + 1
    for name in ("actor", "qf1", "qf2", "qf1_target", "qf2_target"):
        for key, value in getattr(ref, name).state_dict().items():
            assert torch.equal(saved["nets"][name]["state"][key], value), f"{name}.{key}"
    assert torch.equal(saved["log_alpha"], ref.log_alpha.detach())


def test_vector_envs_count_steps_and_keep_the_update_ratio(tmp_path):
    run, cfg = _tiny(tmp_path / "vec", num_envs=3, updates_per_step=0.5)
    run.checkpoint_every = 150
    summary = train_sac(run, cfg, PruneConfig())
    ckpt = load_checkpoint(tmp_path / "vec" / "ckpt.pt")
    steps = ckpt["counters"]["global_step"]
    assert steps == summary["steps"] == 300  # 100 vector steps of 3
    assert ckpt["agent"]["updates"] == int((steps - 100 + 1) * 0.5)
    # Pendulum episodes are 200 steps: 3 envs x 300 steps / 3 = 100 steps each, none finished yet;
    # the buffer holds every transition of all three envs.
    assert ckpt["counters"]["episodes"] == 0
    with np.load(tmp_path / "vec" / ckpt["replay"]) as replay:
        assert replay["obs"].shape == (300, 3)
        assert np.isfinite(replay["rewards"]).all()
    # A resumed vector run continues from its counters with the same ratio.
    run.total_steps = 450
    train_sac(run, cfg, PruneConfig(), resume=True)
    ckpt = load_checkpoint(tmp_path / "vec" / "ckpt.pt")
    assert ckpt["counters"]["global_step"] == 450
    assert ckpt["agent"]["updates"] == int((450 - 100 + 1) * 0.5)


def test_async_vector_envs_run_and_bad_settings_are_errors(tmp_path):
    run, cfg = _tiny(tmp_path / "async", num_envs=2, vector_mode="async", learning_starts=20)
    run.total_steps = 40
    assert train_sac(run, cfg, PruneConfig())["steps"] == 40
    with pytest.raises(ConfigError, match="--vector-mode 'threads': choose sync or async"):
        train_sac(run, SACConfig(num_envs=2, vector_mode="threads"), PruneConfig())
    with pytest.raises(ConfigError, match="--updates-per-step must be positive"):
        train_sac(run, SACConfig(updates_per_step=0.0), PruneConfig())


def _fill(buf: ReplayBuffer, n: int) -> None:
    for i in range(n):
        buf.add(np.full(3, i, np.float32), np.full(1, -i, np.float32), float(i), np.full(3, i + 1), i % 4 == 0)


def test_device_replay_saves_the_same_file_and_samples_stored_rows(tmp_path):
    host, dev = ReplayBuffer(6, (3,), (1,)), DeviceReplayBuffer(6, (3,), (1,), torch.device("cpu"), seed=1)
    _fill(host, 9)
    _fill(dev, 9)
    host.save(tmp_path / "h.npz")
    dev.save(tmp_path / "d.npz")
    with np.load(tmp_path / "h.npz") as a, np.load(tmp_path / "d.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    back = DeviceReplayBuffer(8, (3,), (1,), torch.device("cpu"))
    back.load(tmp_path / "h.npz")
    assert back.size == 6 and back.rewards[:6].tolist() == [3, 4, 5, 6, 7, 8]
    batch = back.sample(64, np.random.default_rng(0))
    assert set(batch["rewards"].tolist()) <= {3.0, 4.0, 5.0, 6.0, 7.0, 8.0}
    torch.testing.assert_close(batch["next_obs"][:, 0], batch["rewards"] + 1)
    torch.testing.assert_close(batch["actions"][:, 0], -batch["rewards"])


def test_checkpoint_state_is_on_the_cpu():
    agent = SACAgent(SACConfig(hidden=[8]), 3, 1)
    tree = to_cpu({"a": [torch.ones(2)], "b": (torch.zeros(1), 3), "c": {"d": "x"}})
    assert tree["a"][0].device.type == "cpu" and tree["b"][1] == 3 and tree["c"] == {"d": "x"}
    devices = {t.device.type for t in _tensors(agent.state())}
    assert devices == {"cpu"}


def _tensors(tree):
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, dict):
        for v in tree.values():
            yield from _tensors(v)
    elif isinstance(tree, (list, tuple)):
        for v in tree:
            yield from _tensors(v)


@pytest.mark.gpu
@needs_cuda
def test_cuda_agent_updates_on_the_device_and_saves_cpu_state():
    agent = SACAgent(SACConfig(hidden=[32, 32], batch_size=32), 4, 2, torch.device("cuda"))
    buf = DeviceReplayBuffer(100, (4,), (2,), torch.device("cuda"))
    rng = np.random.default_rng(0)
    for _ in range(100):
        buf.add(rng.normal(size=4), rng.uniform(-1, 1, 2), float(rng.normal()), rng.normal(size=4), False)
    metrics = agent.update(buf.sample(32, rng))
    assert all(v.device.type == "cuda" and torch.isfinite(v).all() for v in metrics.values())
    state = agent.state()
    assert {t.device.type for t in _tensors(state)} == {"cpu"}
    cpu = SACAgent(SACConfig(hidden=[32, 32], batch_size=32), 4, 2)
    cpu.load_state(state)
    obs = rng.normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(cpu.act(obs, deterministic=True), agent.act(obs, deterministic=True), atol=1e-5)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("prune", ["gradual", "gates"])
def test_pruned_cuda_run_resumes_compacts_and_exports_on_the_cpu(tmp_path, prune):
    out = tmp_path / prune
    extra = ["--gate-target", "0.5"] if prune == "gates" else []
    run_cli("train", "--env", "Pendulum-v1", "--hidden", "32,32", "--batch-size", "32", "--learning-starts", "100",
            "--total-steps", "600", "--prune", prune, "--prune-every", "50", "--eval-episodes", "1",
            "--progress", "false", "--device", "cuda", "--out", str(out), *extra)
    assert load_checkpoint(out / "ckpt.pt")["config"]["run"]["device"] == "cuda"
    run_cli("train", "--resume", str(out), "--total-steps", "800", "--device", "cpu")
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["counters"]["global_step"] == 800 and ckpt["config"]["run"]["device"] == "cpu"
    run_cli("compact", str(out / "ckpt.pt"), "-o", str(tmp_path / "c.pt"))
    run_cli("export", str(tmp_path / "c.pt"), "-o", str(tmp_path / "p.onnx"))
    assert (tmp_path / "p.onnx").stat().st_size > 0

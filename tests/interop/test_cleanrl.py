"""CleanRL models: its scripts' network classes (CleanRL is not a package) saved as the scripts
save them, imported and compared with the class's own deterministic forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgerl.errors import ConfigError
from edgerl.interop import import_policy
from edgerl.interop.stats import write_obs_stats

from .conftest import N_OBS, assert_parity, roundtrip

OBS, ACT = 5, 2
LOW, HIGH = np.array([-1.0, -2.0], np.float32), np.array([1.0, 0.5], np.float32)


class PPOAgent(nn.Module):  # cleanrl/ppo_continuous_action.py (layer_init omitted: any weights do)
    def __init__(self):
        super().__init__()
        self.critic = nn.Sequential(nn.Linear(OBS, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))
        self.actor_mean = nn.Sequential(nn.Linear(OBS, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(),
                                        nn.Linear(16, ACT))
        self.actor_logstd = nn.Parameter(torch.zeros(1, ACT))


class TD3Actor(nn.Module):  # cleanrl/td3_continuous_action.py
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc_mu = nn.Linear(OBS, 16), nn.Linear(16, 16), nn.Linear(16, ACT)
        self.register_buffer("action_scale", torch.tensor((HIGH - LOW) / 2.0, dtype=torch.float32))
        self.register_buffer("action_bias", torch.tensor((HIGH + LOW) / 2.0, dtype=torch.float32))

    def forward(self, x):
        x = torch.relu(self.fc2(torch.relu(self.fc1(x))))
        return torch.tanh(self.fc_mu(x)) * self.action_scale + self.action_bias


class QNetwork(nn.Module):  # cleanrl/dqn.py
    def __init__(self, n: int = 4):
        super().__init__()
        self.network = nn.Sequential(nn.Linear(OBS, 12), nn.ReLU(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, n))

    def forward(self, x):
        return self.network(x)


def _obs(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=(N_OBS, OBS)) * 3).astype(np.float32)


def _io_bounds(tmp_path) -> str:
    path = tmp_path / "io.yaml"
    path.write_text(f"action:\n  clip: {{low: {LOW.tolist()}, high: {HIGH.tolist()}}}\n")
    return str(path)


def test_cleanrl_ppo_continuous_with_stats(tmp_path):
    torch.manual_seed(0)
    agent = PPOAgent()
    with torch.no_grad():
        agent.actor_mean[4].weight.mul_(5.0)
    torch.save(agent.state_dict(), tmp_path / "ppo.cleanrl_model")
    rng = np.random.default_rng(1)
    mean, var = rng.normal(size=OBS), rng.uniform(0.5, 4.0, size=OBS)
    write_obs_stats(tmp_path / "stats.json", mean, var, eps=1e-8, clip=10.0)
    with pytest.raises(ConfigError, match="NormalizeObservation") as e:
        import_policy(tmp_path / "ppo.cleanrl_model", "cleanrl")
    assert "\n" not in str(e.value)
    payload, _ = import_policy(tmp_path / "ppo.cleanrl_model", "cleanrl", obs_stats=tmp_path / "stats.json",
                               io_path=_io_bounds(tmp_path))
    obs = _obs()
    normed = np.clip((obs - mean) / np.sqrt(var + 1e-8), -10, 10).astype(np.float32)
    with torch.no_grad():
        reference = np.clip(agent.actor_mean(torch.as_tensor(normed)).numpy(), LOW, HIGH)  # ClipAction
    assert np.mean((reference == LOW) | (reference == HIGH)) > 0.05
    gaps = assert_parity(roundtrip(payload, tmp_path), obs, reference)
    print(f"cleanrl ppo_continuous_action: max |diff| torch {gaps['torch']:.2e} onnx {gaps['onnx']:.2e}")


def test_cleanrl_td3_parity(tmp_path):
    torch.manual_seed(1)
    actor, qf = TD3Actor(), nn.Linear(OBS + ACT, 1)
    torch.save((actor.state_dict(), qf.state_dict(), qf.state_dict()), tmp_path / "td3.cleanrl_model")
    obs = _obs()
    with torch.no_grad():
        reference = actor(torch.as_tensor(obs)).numpy()
    payload, imported = import_policy(tmp_path / "td3.cleanrl_model", "cleanrl")
    assert imported.algo == "td3/ddpg"
    gaps = assert_parity(roundtrip(payload, tmp_path), obs, reference)
    print(f"cleanrl td3: max |diff| torch {gaps['torch']:.2e} onnx {gaps['onnx']:.2e}")


def test_cleanrl_dqn_parity(tmp_path):
    torch.manual_seed(2)
    q = QNetwork()
    torch.save(q.state_dict(), tmp_path / "dqn.cleanrl_model")
    obs = _obs()
    with torch.no_grad():
        reference = q(torch.as_tensor(obs)).argmax(-1).numpy()
    payload, _ = import_policy(tmp_path / "dqn.cleanrl_model", "cleanrl")
    assert_parity(roundtrip(payload, tmp_path), obs, reference, discrete=True)

"""Stable-Baselines3 archives imported and compared with ``model.predict(deterministic=True)``."""

from __future__ import annotations

import runpy

import numpy as np
import pytest
import torch

from edgerl.errors import ConfigError
from edgerl.interop import ImportLayoutError, import_policy
from tests.conftest import REPO

from .conftest import N_OBS, assert_parity, roundtrip

sb3 = pytest.importorskip("stable_baselines3")


def _obs(low: np.ndarray, high: np.ndarray, seed: int = 0) -> np.ndarray:
    """Observations reaching past the bounds, so squashing and clipping are exercised."""
    rng = np.random.default_rng(seed)
    return rng.uniform(3 * low, 3 * high, size=(N_OBS, low.size)).astype(np.float32)


def _scale_head(model, names: list[str]) -> None:
    """SB3 initialises PPO/A2C heads with gain 0.01: scale them so the action clip is reached."""
    with torch.no_grad():
        for name in names:
            model.policy.get_parameter(name).mul_(300.0 if name == "action_net.weight" else 10.0)


CASES = {
    # algo, env, policy_kwargs, head parameters scaled up so clip / tanh saturation occur
    "ppo": ("PPO", "Pendulum-v1", {"net_arch": [16, 16]}, ["action_net.weight"]),
    "a2c": ("A2C", "Pendulum-v1", {"net_arch": [8], "activation_fn": torch.nn.ELU}, ["action_net.weight"]),
    "sac": ("SAC", "Pendulum-v1", {"net_arch": [16, 16]}, ["actor.mu.weight"]),
    "td3": ("TD3", "Pendulum-v1", {"net_arch": [16, 8]}, ["actor.mu.4.weight"]),
    "dqn": ("DQN", "CartPole-v1", {"net_arch": [16, 16]}, []),
    "ppo_discrete": ("PPO", "CartPole-v1", {"net_arch": [16]}, ["action_net.weight"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sb3_parity(case, tmp_path):
    algo, env_id, kwargs, heads = CASES[case]
    model = getattr(sb3, algo)("MlpPolicy", env_id, policy_kwargs=kwargs, seed=0, device="cpu")
    _scale_head(model, heads)
    model.save(tmp_path / "model.zip")
    space = model.observation_space
    low, high = np.clip(space.low, -5, 5), np.clip(space.high, -5, 5)
    obs = _obs(low, high)
    reference, _ = model.predict(obs, deterministic=True)
    payload, imported = import_policy(tmp_path / "model.zip", "sb3")
    ckpt = roundtrip(payload, tmp_path)
    discrete = case in ("dqn", "ppo_discrete")
    assert ckpt["algo"] == ("discrete" if discrete else "sac" if case in ("sac", "td3") else "continuous")
    gaps = assert_parity(ckpt, obs, reference, discrete=discrete)
    print(f"sb3 {case}: max |diff| torch {gaps['torch']:.2e} onnx {gaps['onnx']:.2e}")
    high_a = getattr(model.action_space, "high", None)
    if case in ("ppo", "a2c"):  # the clip is really active on these observations
        assert np.mean(np.abs(reference) == high_a) > 0.05
    elif not discrete:  # the squashed actions span the bounds
        assert np.abs(reference).max() > 0.9 * high_a.max()


def test_sb3_vecnormalize_stats(tmp_path):
    """Statistics exported by tools/export_vecnormalize.py reproduce predict on normalised obs."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    vec = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), clip_obs=2.0)
    vec.reset()
    for _ in range(50):
        vec.step(np.array([vec.action_space.sample()]))
    model = sb3.SAC("MlpPolicy", vec, policy_kwargs={"net_arch": [16]}, seed=0, device="cpu")
    model.save(tmp_path / "model.zip")
    vec.save(str(tmp_path / "vecnormalize.pkl"))
    tool = runpy.run_path(str(REPO / "tools" / "export_vecnormalize.py"), run_name="tool")
    assert tool["main"]([str(tmp_path / "vecnormalize.pkl"), "-o", str(tmp_path / "stats.npz")]) == 0
    with pytest.raises(ConfigError, match="VecNormalize"):  # the pickle beside the zip is evidence
        import_policy(tmp_path / "model.zip", "sb3")
    payload, _ = import_policy(tmp_path / "model.zip", "sb3", obs_stats=tmp_path / "stats.npz")
    obs = _obs(np.array([-1, -1, -8.0]), np.array([1, 1, 8.0]))
    reference, _ = model.predict(vec.normalize_obs(obs), deterministic=True)
    assert np.abs(vec.normalize_obs(obs)).max() == pytest.approx(2.0)  # the clip is exercised
    assert_parity(roundtrip(payload, tmp_path), obs, reference)
    # Imported without the statistics when the user says so; then the actions differ.
    payload, _ = import_policy(tmp_path / "model.zip", "sb3", no_normalizer=True)
    assert payload["agent"]["normalizer"] is None


class _Planted:
    def __reduce__(self):
        import os

        return (os.system, ("touch planted",))


def test_vecnormalize_exporter_runs_no_code_from_the_pickle(tmp_path, monkeypatch, capsys):
    import pickle

    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(_Planted()))
    tool = runpy.run_path(str(REPO / "tools" / "export_vecnormalize.py"), run_name="tool")
    assert tool["main"]([str(tmp_path / "bad.pkl"), "-o", str(tmp_path / "stats.npz")]) == 2
    assert not (tmp_path / "planted").exists() and not (tmp_path / "stats.npz").exists()
    assert "refused global" in capsys.readouterr().err


def test_sb3_unknown_layout_names_keys(tmp_path):
    import zipfile

    buf = tmp_path / "policy.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, buf)
    with zipfile.ZipFile(tmp_path / "odd.zip", "w") as z:
        z.writestr("data", "{}")
        z.write(buf, "policy.pth")
    with pytest.raises(ImportLayoutError, match=r"keys found: encoder\.weight.*known layouts: ppo/a2c"):
        import_policy(tmp_path / "odd.zip", "sb3")


def test_sb3_refuses_pickled_module(tmp_path):
    """A policy.pth holding a pickled module (code) is refused, never unpickled."""
    import zipfile

    torch.save(torch.nn.Linear(2, 2), tmp_path / "policy.pth")
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
        z.writestr("data", "{}")
        z.write(tmp_path / "policy.pth", "policy.pth")
    with pytest.raises(ImportLayoutError, match="weights_only=True"):
        import_policy(tmp_path / "bad.zip", "sb3")


class _Frames:
    """A tiny image env (36x36 RGB, the Nature CNN's minimum): SB3 wraps it with VecTransposeImage."""

    @staticmethod
    def make(continuous: bool):
        import gymnasium as gym

        class Frames(gym.Env):
            observation_space = gym.spaces.Box(0, 255, (36, 36, 3), np.uint8)
            action_space = gym.spaces.Box(-1, 1, (2,), np.float32) if continuous else gym.spaces.Discrete(4)

            def reset(self, seed=None, options=None):
                return self.observation_space.sample(), {}

            def step(self, action):
                return self.observation_space.sample(), 0.0, False, False, {}

        return Frames()


@pytest.mark.parametrize("case", ["ppo", "dqn", "ppo_continuous"])
def test_sb3_cnn_policy_parity(case, tmp_path):
    env = _Frames.make(continuous=case == "ppo_continuous")
    kwargs = {"features_extractor_kwargs": {"features_dim": 32}}
    if case == "dqn":
        model = sb3.DQN("CnnPolicy", env, policy_kwargs=kwargs, buffer_size=10, seed=0, device="cpu")
        with torch.no_grad():  # spread the Q-values so the argmax varies across frames
            model.policy.q_net.q_net[0].weight.mul_(100.0)
    else:
        model = sb3.PPO("CnnPolicy", env, policy_kwargs=kwargs, n_steps=8, batch_size=8, seed=0, device="cpu")
        _scale_head(model, ["action_net.weight"])
    model.save(tmp_path / "model.zip")
    rng = np.random.default_rng(0)  # channel-first frames of varied brightness and contrast
    obs = (rng.integers(0, 256, size=(200, 3, 36, 36)) * rng.uniform(0, 1, (200, 1, 1, 1))
           + rng.uniform(0, 128, (200, 3, 1, 1))).clip(0, 255).astype(np.uint8)
    reference, _ = model.predict(obs, deterministic=True)
    payload, imported = import_policy(tmp_path / "model.zip", "sb3")
    assert imported.obs_shape == [3, 36, 36] and payload["env"]["observation_space"]["dtype"] == "uint8"
    gaps = assert_parity(roundtrip(payload, tmp_path), obs, reference, discrete=case != "ppo_continuous")
    print(f"sb3 {case} CnnPolicy: max |diff| torch {gaps['torch']:.2e} onnx {gaps['onnx']:.2e}")


def test_sb3_env_mismatch_names_both(tmp_path):
    model = sb3.SAC("MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [8]}, device="cpu")
    model.save(tmp_path / "model.zip")
    with pytest.raises(ConfigError, match=r"CartPole-v1 observes box \[4\] but the network takes \[3\]"):
        import_policy(tmp_path / "model.zip", "sb3", env_id="CartPole-v1")


@pytest.mark.parametrize("space", ["multidiscrete", "multibinary"])
def test_sb3_multi_head_action_spaces_are_refused(tmp_path, space):
    """A MultiDiscrete/MultiBinary policy has one categorical head per action element: refused, not
    imported as one argmax over all the concatenated logits."""
    import gymnasium as gym

    class Multi(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        action_space = gym.spaces.MultiDiscrete([3, 2]) if space == "multidiscrete" else gym.spaces.MultiBinary(2)

        def reset(self, *, seed=None, options=None):
            return np.zeros(3, np.float32), {}

        def step(self, action):
            return np.zeros(3, np.float32), 0.0, True, False, {}

    sb3.PPO("MlpPolicy", Multi(), n_steps=8, batch_size=8, seed=0, device="cpu").save(tmp_path / "m.zip")
    name = "MultiDiscrete" if space == "multidiscrete" else "MultiBinary"
    with pytest.raises(ImportLayoutError, match=f"acts in a {name} space; edgerl imports Box and Discrete actions"):
        import_policy(tmp_path / "m.zip", "sb3")

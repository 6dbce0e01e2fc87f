"""skrl agents (PPO with a Gaussian policy, DDPG with a deterministic one) saved with
``agent.save`` and compared with the agent's own deterministic inference (``mean_actions``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgerl.interop import ImportLayoutError, import_policy

from .conftest import N_OBS, assert_parity, roundtrip

skrl = pytest.importorskip("skrl")
gym = pytest.importorskip("gymnasium")

OBS, ACT = 6, 2
OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, (OBS,), np.float32)
ACT_SPACE = gym.spaces.Box(-1.0, 1.0, (ACT,), np.float32)
NETWORK = [{"name": "net", "input": "OBSERVATIONS", "layers": [16, 8], "activations": "elu"}]


def _obs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(N_OBS, OBS)) * 4 + 2).astype(np.float32)


def _feed(pre) -> None:
    for i in range(3):
        pre(torch.as_tensor(_obs(10 + i)[:200] * 0.2 * (i + 1)), train=True)


def test_skrl_ppo_gaussian_parity(tmp_path):
    from skrl.agents.torch.ppo import PPO
    from skrl.resources.preprocessors.torch import RunningStandardScaler
    from skrl.utils.model_instantiators.torch import deterministic_model, gaussian_model

    torch.manual_seed(0)
    policy = gaussian_model(observation_space=OBS_SPACE, action_space=ACT_SPACE, device="cpu", network=NETWORK,
                            output="ACTIONS")
    value = deterministic_model(observation_space=OBS_SPACE, action_space=ACT_SPACE, device="cpu",
                                network=NETWORK, output="ONE")
    agent = PPO(models={"policy": policy, "value": value}, observation_space=OBS_SPACE, action_space=ACT_SPACE,
                device="cpu", cfg={"observation_preprocessor": RunningStandardScaler,
                                   "observation_preprocessor_kwargs": {"size": OBS_SPACE, "device": "cpu"}})
    _feed(agent._observation_preprocessor)
    obs = _obs()
    with torch.no_grad():  # skrl's layers are lazy: materialise them as training would
        agent.value.act({"observations": torch.as_tensor(obs[:2])}, role="value")
        agent.policy.act({"observations": torch.as_tensor(obs[:2])}, role="policy")
    agent.save(str(tmp_path / "agent.pt"))
    with torch.no_grad():
        _, outputs = agent.act(torch.as_tensor(obs), None, timestep=0, timesteps=1)
    reference = outputs["mean_actions"].numpy()
    payload, imported = import_policy(tmp_path / "agent.pt", "skrl")
    assert imported.algo == "gaussian" and imported.normalizer is not None
    pre = agent._observation_preprocessor(torch.as_tensor(obs))
    assert (pre.abs() == 5.0).any()  # the scaler's clip is exercised
    gaps = assert_parity(roundtrip(payload, tmp_path), obs, reference)
    print(f"skrl ppo gaussian: max |diff| torch {gaps['torch']:.2e} onnx {gaps['onnx']:.2e}")


def test_skrl_ddpg_deterministic_tanh_parity(tmp_path):
    from skrl.agents.torch.ddpg import DDPG
    from skrl.resources.preprocessors.torch import RunningStandardScaler
    from skrl.utils.model_instantiators.torch import deterministic_model

    torch.manual_seed(1)

    def actor():
        return deterministic_model(observation_space=OBS_SPACE, action_space=ACT_SPACE, device="cpu",
                                   network=NETWORK, output="tanh(ACTIONS)")

    def critic():
        net = [{"name": "net", "input": "concatenate([OBSERVATIONS, ACTIONS])", "layers": [8],
                "activations": "relu"}]
        return deterministic_model(observation_space=OBS_SPACE, action_space=ACT_SPACE, device="cpu", network=net,
                                   output="ONE")

    agent = DDPG(models={"policy": actor(), "target_policy": actor(), "critic": critic(), "target_critic": critic()},
                 observation_space=OBS_SPACE, action_space=ACT_SPACE, device="cpu",
                 cfg={"observation_preprocessor": RunningStandardScaler,
                      "observation_preprocessor_kwargs": {"size": OBS_SPACE, "device": "cpu"}})
    _feed(agent._observation_preprocessor)
    obs = _obs()
    with torch.no_grad():  # skrl's layers are lazy: materialise them as training would
        for role in ("policy", "target_policy"):
            agent.models[role].act({"observations": torch.as_tensor(obs[:2])}, role=role)
        for role in ("critic", "target_critic"):
            agent.models[role].act({"observations": torch.as_tensor(obs[:2]),
                                    "taken_actions": torch.zeros(2, ACT)}, role=role)
        for p in agent.policy.parameters():
            p.mul_(3.0)  # reach tanh saturation
    agent.save(str(tmp_path / "agent.pt"))
    with torch.no_grad():
        reference, _ = agent.policy.act({"observations": agent._observation_preprocessor(torch.as_tensor(obs))},
                                        role="policy")
    payload, imported = import_policy(tmp_path / "agent.pt", "skrl", out_activation="tanh")
    assert imported.algo == "deterministic"
    gaps = assert_parity(roundtrip(payload, tmp_path), obs, reference.numpy())
    print(f"skrl ddpg deterministic: max |diff| torch {gaps['torch']:.2e} onnx {gaps['onnx']:.2e}")


def test_skrl_unknown_layout(tmp_path):
    torch.save({"policy": {"a.weight": torch.zeros(2, 2)}, "value": {}}, tmp_path / "agent.pt")
    with pytest.raises(ImportLayoutError, match=r"keys found: a\.weight.*known layouts: gaussian"):
        import_policy(tmp_path / "agent.pt", "skrl")

"""sb3-contrib's RecurrentPPO (``MlpLstmPolicy``, SB3 issue #1125: no way to export it) against the
library's own ``predict(obs, state, episode_start, deterministic=True)``: a tiny model trained and
saved with ``model.save()`` in the test, imported with ``--from sb3``, then edgerl's torch policy and
the exported ONNX through the runtime over 1,000 steps with episode starts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import N_OBS, recurrent_parity

sb3_contrib = pytest.importorskip("sb3_contrib")

STARTS = (0, 137, 138, 400, 777, 901)
"""Episode starts of the 1,000-step sequence (two in a row: a one-step episode)."""


def _train(tmp_path, env_id: str = "Pendulum-v1", **policy_kwargs):
    from sb3_contrib import RecurrentPPO

    model = RecurrentPPO("MlpLstmPolicy", env_id, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu",
                         policy_kwargs=policy_kwargs)
    model.learn(128)
    return model


def _predict(model, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The library's deterministic actions, its LSTM state fed back and reset where an episode starts."""
    state, out = None, []
    for o, start in zip(obs, starts, strict=True):
        action, state = model.predict(o[None], state=state, episode_start=np.array([start]), deterministic=True)
        out.append(action[0])
    return np.asarray(out)


@pytest.mark.parametrize("kwargs,env,widen", [
    ({"lstm_hidden_size": 16, "net_arch": [16]}, "Pendulum-v1", 1.5),
    ({"lstm_hidden_size": 8, "n_lstm_layers": 2, "shared_lstm": True, "enable_critic_lstm": False,
      "net_arch": [], "activation_fn": "relu"}, None, 30.0),
])
def test_recurrent_ppo_parity(tmp_path, kwargs, env, widen):
    import torch

    if kwargs.get("activation_fn") == "relu":
        kwargs = {**kwargs, "activation_fn": torch.nn.ReLU}
    model = _train(tmp_path, **kwargs)
    torch.manual_seed(0)
    with torch.no_grad():  # SB3 initialises action_net with gain 0.01: widen it so the clip to [-2, 2] acts
        model.policy.action_net.weight.normal_(0.0, widen)
    model.save(tmp_path / "rppo.zip")
    rng = np.random.default_rng(0)
    obs = (rng.uniform(-1, 1, size=(N_OBS, 3)) * np.array([1, 1, 8])).astype(np.float32)
    starts = np.zeros(N_OBS, bool)
    starts[list(STARTS)] = True
    reference = _predict(model, obs, starts)
    assert 0.05 < np.mean(np.abs(reference) >= 2.0) < 0.95, "the clip is not exercised"
    gaps = recurrent_parity(tmp_path, tmp_path / "rppo.zip", "sb3", obs, starts, reference, env_id=env)
    print(f"sb3-contrib RecurrentPPO {kwargs}: {N_OBS} steps, {len(STARTS)} episode starts, max |diff| "
          f"torch {gaps['torch']:.2e} runtime {gaps['runtime']:.2e}")


def test_recurrent_ppo_discrete_parity(tmp_path):
    """A categorical RecurrentPPO (CartPole-v1): the argmax of its logits, state fed back and reset,
    equals the library's deterministic predict in torch and through the exported ONNX in the runtime."""
    import torch

    model = _train(tmp_path, "CartPole-v1", lstm_hidden_size=8, net_arch=[8])
    torch.manual_seed(1)
    with torch.no_grad():  # SB3's action_net starts near zero (gain 0.01): spread the logits
        model.policy.action_net.weight.normal_(0.0, 3.0)
    model.save(tmp_path / "rppo.zip")
    rng = np.random.default_rng(1)
    obs = (rng.normal(size=(N_OBS, 4)) * np.array([1.0, 2.0, 0.2, 2.0])).astype(np.float32)
    starts = np.zeros(N_OBS, bool)
    starts[list(STARTS)] = True
    reference = _predict(model, obs, starts)
    assert 0.1 < reference.mean() < 0.9, "one action only: the comparison would be trivial"
    gaps = recurrent_parity(tmp_path, tmp_path / "rppo.zip", "sb3", obs, starts, reference, env_id="CartPole-v1")
    assert gaps == {"torch": 0.0, "runtime": 0.0}  # the same index at every step
    contract = json.loads((tmp_path / "contract.json").read_text())
    assert contract["baked_in"] == ["lstm_memory", "argmax"] and contract["action"]["n"] == 2
    from edgerl.export.native import export_c
    from edgerl.runtime.backends.c import find_compiler

    report = export_c(tmp_path / "policy.pt", tmp_path / "c")  # the C step: judged on the logits, as ONNX
    assert report.discrete and report.layers[-1] == "argmax" and report.max_abs_diff["ir"] <= 1e-5
    assert ("compiled" in report.max_abs_diff) == (find_compiler() is not None)

"""Recurrent rsl_rl actors (LSTM and GRU memory) against rsl_rl's own recurrent inference.

4.x+: a real ``RNNModel`` actor saved through ``PPO.save()`` (what ``OnPolicyRunner.save`` writes);
older layouts (``ActorCriticRecurrent``: ``memory_a.rnn.*`` + ``actor.N.*``) built from rsl_rl's
``RNN`` (the ``Memory`` module renamed, same forward and reset), ``MLP`` and
``EmpiricalNormalization`` under their documented key names. The library runs a sequence of
observations with its own hidden state (``forward`` without masks) and ``reset(dones)`` where an
episode ends; edgerl's torch policy and the exported ONNX run through the runtime's ``Policy``
(``act`` keeps the state, ``reset`` zeros it at the same episode starts) must match it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .conftest import N_OBS, recurrent_parity

rsl_rl = pytest.importorskip("rsl_rl")
pytest.importorskip("tensordict")

OBS, ACT = 7, 3
STARTS = (0, 137, 138, 400, 777, 901)
"""Episode starts of the 1,000-step sequence (two in a row: a one-step episode)."""


def _sequence(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = (rng.normal(size=(N_OBS, OBS)) * 3 + 1).astype(np.float32)
    starts = np.zeros(N_OBS, bool)
    starts[list(STARTS)] = True
    return obs, starts


def _library_actions(step, reset, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """rsl_rl's deterministic actions over the sequence, its memory reset as its runner resets it:
    ``reset(dones)`` after the last step of an episode (here: before the next episode's first)."""
    out = []
    with torch.no_grad():
        for t, o in enumerate(obs):
            if starts[t] and t > 0:
                reset(torch.ones(1))
            out.append(step(torch.as_tensor(o[None])).numpy()[0])
    return np.asarray(out)


@pytest.mark.parametrize("kind,norm", [("lstm", True), ("lstm", False), ("gru", True), ("gru", False)])
def test_rsl_rl_v4_recurrent_parity(tmp_path, kind, norm):
    from rsl_rl.algorithms import PPO
    from rsl_rl.models import RNNModel
    from tensordict import TensorDict

    obs_td = TensorDict({"policy": torch.zeros(4, OBS)}, batch_size=[4])
    groups = {"actor": ["policy"], "critic": ["policy"]}
    dist = {"class_name": "rsl_rl.modules.distribution:GaussianDistribution", "std_type": "scalar"}
    torch.manual_seed(3)
    actor = RNNModel(obs_td, groups, "actor", ACT, hidden_dims=[16, 8], activation="elu", obs_normalization=norm,
                     distribution_cfg=dist, rnn_type=kind, rnn_hidden_dim=12, rnn_num_layers=2)
    critic = RNNModel(obs_td, groups, "critic", 1, hidden_dims=[8], rnn_type=kind, rnn_hidden_dim=8)
    obs, starts = _sequence()
    if norm:
        actor.train()
        for i in range(3):
            actor.update_normalization(TensorDict({"policy": torch.as_tensor(obs[i * 200:(i + 1) * 200] * (i + 2))},
                                                  batch_size=[200]))
    actor.eval()
    saved = PPO(actor, critic, storage=None).save()  # what OnPolicyRunner.save writes, plus iter/infos
    torch.save({**saved, "iter": 0, "infos": None}, tmp_path / "model_0.pt")
    actor.reset()
    reference = _library_actions(lambda x: actor(TensorDict({"policy": x}, batch_size=[1])), actor.reset, obs, starts)
    gaps = recurrent_parity(tmp_path, tmp_path / "model_0.pt", "rsl_rl", obs, starts, reference)
    print(f"rsl_rl 4.x+ {kind} norm={norm}: {N_OBS} steps, {len(STARTS)} episode starts, max |diff| "
          f"torch {gaps['torch']:.2e} runtime {gaps['runtime']:.2e}")


@pytest.mark.parametrize("layout,kind,layers", [("v1", "gru", 1), ("2.x", "lstm", 1), ("3.x", "lstm", 2)])
def test_rsl_rl_old_recurrent_layouts_parity(tmp_path, layout, kind, layers):
    """``ActorCriticRecurrent``: normaliser -> ``memory_a`` -> ``actor`` MLP (``act_inference``)."""
    from rsl_rl.modules import MLP, RNN, EmpiricalNormalization

    torch.manual_seed(4)
    memory, mlp = RNN(OBS, 10, layers, kind), MLP(10, ACT, [16, 8], "elu").eval()
    obs, starts = _sequence(1)
    norm = EmpiricalNormalization(OBS) if layout != "v1" else torch.nn.Identity()
    if layout != "v1":
        norm.train()
        norm.update(torch.as_tensor(obs[:300] * 2))
    norm.eval()
    model = {**{f"memory_a.{k}": v for k, v in memory.state_dict().items()},
             **{f"memory_c.{k}": torch.zeros_like(v) for k, v in memory.state_dict().items()},
             **{f"actor.{k}": v for k, v in mlp.state_dict().items()}, "std": torch.ones(ACT),
             "critic.0.weight": torch.zeros(1, 10), "critic.0.bias": torch.zeros(1)}
    ckpt = {"model_state_dict": model, "optimizer_state_dict": {}, "iter": 5, "infos": None}
    if layout == "2.x":
        ckpt["obs_norm_state_dict"] = norm.state_dict()
    if layout == "3.x":
        model.update({f"actor_obs_normalizer.{k}": v for k, v in norm.state_dict().items()})
    torch.save(ckpt, tmp_path / "model_5.pt")
    reference = _library_actions(lambda x: mlp(memory(norm(x)).squeeze(0)), memory.reset, obs, starts)
    gaps = recurrent_parity(tmp_path, tmp_path / "model_5.pt", "rsl_rl", obs, starts, reference)
    print(f"rsl_rl {layout} {kind} x{layers}: {N_OBS} steps, {len(STARTS)} episode starts, max |diff| "
          f"torch {gaps['torch']:.2e} runtime {gaps['runtime']:.2e}")

"""rsl_rl checkpoints imported and compared with rsl_rl's own modules (rsl-rl-lib).

4.x+: a real ``MLPModel`` actor (normaliser fed by ``update_normalization``) saved through
``PPO.save()`` as ``OnPolicyRunner.save`` writes it. Older layouts (v1 legged_gym, 2.x, 3.x) are
built from rsl_rl's ``MLP`` and ``EmpiricalNormalization`` under their documented key names
(the installed rsl_rl writes only the newest layout).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgerl.errors import ConfigError
from edgerl.interop import ImportLayoutError, import_policy

from .conftest import N_OBS, assert_parity, roundtrip

rsl_rl = pytest.importorskip("rsl_rl")
pytest.importorskip("tensordict")

OBS, ACT = 7, 3


def _obs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(N_OBS, OBS)) * 3 + 1).astype(np.float32)


def _fed_normalizer(norm) -> None:
    norm.train()
    for i in range(3):
        norm.update(torch.as_tensor(_obs(10 + i)[:200] * (i + 2)))
    norm.eval()


@pytest.mark.parametrize("std_type", ["scalar", "log"])
def test_rsl_rl_v4_parity(tmp_path, std_type):
    from rsl_rl.algorithms import PPO
    from rsl_rl.models import MLPModel
    from tensordict import TensorDict

    obs_td = TensorDict({"policy": torch.zeros(4, OBS)}, batch_size=[4])
    groups = {"actor": ["policy"], "critic": ["policy"]}
    dist = {"class_name": "rsl_rl.modules.distribution:GaussianDistribution", "std_type": std_type}
    torch.manual_seed(0)
    actor = MLPModel(obs_td, groups, "actor", ACT, hidden_dims=[16, 8], activation="elu", obs_normalization=True,
                     distribution_cfg=dist)
    critic = MLPModel(obs_td, groups, "critic", 1, hidden_dims=[8])
    actor.train()
    for i in range(3):
        actor.update_normalization(TensorDict({"policy": torch.as_tensor(_obs(10 + i)[:200] * (i + 2))},
                                              batch_size=[200]))
    actor.eval()
    saved = PPO(actor, critic, storage=None).save()  # what OnPolicyRunner.save writes, plus iter/infos
    torch.save({**saved, "iter": 0, "infos": None}, tmp_path / "model_0.pt")
    obs = _obs()
    with torch.no_grad():
        reference = actor(TensorDict({"policy": torch.as_tensor(obs)}, batch_size=[N_OBS])).numpy()
    payload, imported = import_policy(tmp_path / "model_0.pt", "rsl_rl")
    assert imported.algo == "4.x+" and imported.normalizer is not None
    gaps = assert_parity(roundtrip(payload, tmp_path), obs, reference)
    print(f"rsl_rl 4.x+ ({std_type}): max |diff| torch {gaps['torch']:.2e} onnx {gaps['onnx']:.2e}")


@pytest.mark.parametrize("layout", ["v1", "2.x", "3.x"])
def test_rsl_rl_old_layouts_parity(tmp_path, layout):
    from rsl_rl.modules import MLP, EmpiricalNormalization

    torch.manual_seed(1)
    mlp = MLP(OBS, ACT, [16, 16, 8], "elu").eval()
    norm = EmpiricalNormalization(OBS).eval() if layout != "v1" else torch.nn.Identity()
    if layout != "v1":
        _fed_normalizer(norm)
    model = {**{f"actor.{k}": v for k, v in mlp.state_dict().items()}, "std": torch.ones(ACT),
             "critic.0.weight": torch.zeros(1, OBS), "critic.0.bias": torch.zeros(1)}
    ckpt = {"model_state_dict": model, "optimizer_state_dict": {}, "iter": 5, "infos": None}
    if layout == "2.x":
        ckpt["obs_norm_state_dict"] = norm.state_dict()
    if layout == "3.x":
        model.update({f"actor_obs_normalizer.{k}": v for k, v in norm.state_dict().items()})
    torch.save(ckpt, tmp_path / "model_5.pt")
    obs = _obs()
    with torch.no_grad():
        reference = mlp(norm(torch.as_tensor(obs))).numpy()
    payload, imported = import_policy(tmp_path / "model_5.pt", "rsl_rl")
    assert (imported.normalizer is None) == (layout == "v1")
    gaps = assert_parity(roundtrip(payload, tmp_path), obs, reference)
    print(f"rsl_rl {layout}: max |diff| torch {gaps['torch']:.2e} onnx {gaps['onnx']:.2e}")


def test_rsl_rl_io_scales_and_action_chain(tmp_path):
    """legged_gym style: the env scales observations, clips, scales and offsets actions; --io bakes it in."""
    from rsl_rl.modules import MLP, EmpiricalNormalization

    torch.manual_seed(2)
    mlp, norm = MLP(OBS, ACT, [16], "elu").eval(), EmpiricalNormalization(OBS).eval()
    _fed_normalizer(norm)
    torch.save({"model_state_dict": {**{f"actor.{k}": v for k, v in mlp.state_dict().items()},
                                     **{f"actor_obs_normalizer.{k}": v for k, v in norm.state_dict().items()},
                                     "std": torch.ones(ACT)}}, tmp_path / "model.pt")
    (tmp_path / "io.yaml").write_text(
        "observation:\n  terms:\n    - {name: lin_vel, size: 3, unit: m/s, scale: 2.0}\n"
        "    - {name: joint_pos, size: 4, unit: rad}\n"
        "action:\n  clip: 0.5\n  scale: 0.25\n  offset: [0.1, -0.8, 1.5]\n  joint_names: [hip, thigh, calf]\n"
        "control_rate_hz: 50\n")
    payload, _ = import_policy(tmp_path / "model.pt", "rsl_rl", io_path=tmp_path / "io.yaml")
    obs = _obs()
    scale = np.array([2.0] * 3 + [1.0] * 4, dtype=np.float32)
    with torch.no_grad():
        raw = mlp(norm(torch.as_tensor(obs * scale))).numpy()
    reference = np.clip(raw, -0.5, 0.5) * 0.25 + np.array([0.1, -0.8, 1.5], dtype=np.float32)
    assert np.mean(np.abs(raw) > 0.5) > 0.05  # the clip is exercised
    ckpt = roundtrip(payload, tmp_path)
    assert_parity(ckpt, obs, reference)
    assert ckpt["env"]["io"]["action"]["joint_names"] == ["hip", "thigh", "calf"]
    assert ckpt["env"]["action_space"]["low"] == pytest.approx([0.1 - 0.125, -0.8 - 0.125, 1.5 - 0.125])


def test_rsl_rl_io_width_mismatch_is_one_line(tmp_path):
    from rsl_rl.modules import MLP

    torch.save({"model_state_dict": {f"actor.{k}": v for k, v in MLP(OBS, ACT, [8], "elu").state_dict().items()}},
               tmp_path / "model.pt")
    (tmp_path / "io.yaml").write_text("observation:\n  terms:\n    - {name: a, size: 5}\naction:\n  scale: [1, 2]\n")
    with pytest.raises(ConfigError, match="observation terms sum to 5 entries but the network takes 7") as e:
        import_policy(tmp_path / "model.pt", "rsl_rl", io_path=tmp_path / "io.yaml")
    assert "\n" not in str(e.value)


def test_rsl_rl_unknown_and_recurrent(tmp_path):
    torch.save({"weights": {"layer.weight": torch.zeros(2, 2)}}, tmp_path / "odd.pt")
    with pytest.raises(ImportLayoutError, match=r"keys found: weights.*known layouts: v1/2.x"):
        import_policy(tmp_path / "odd.pt", "rsl_rl")
    cases = {  # malformed recurrent actors: each a one-line error naming what is wrong
        "lacks its weight_ih_l<k>/weight_hh_l<k>": {"memory_a.rnn.weight_ih_l0": torch.zeros(4, 2)},
        "bidirectional or projected": {**torch.nn.GRU(2, 3, bidirectional=True).state_dict()},
        "neither an LSTM": {"weight_ih_l0": torch.zeros(10, 2), "weight_hh_l0": torch.zeros(10, 5)},
        "takes 4 inputs but the gru memory gives 3": {**torch.nn.GRU(2, 3).state_dict()},
    }
    for i, (message, rnn) in enumerate(cases.items()):
        state = {"actor.0.weight": torch.zeros(2, 4), "actor.0.bias": torch.zeros(2),
                 **{k if k.startswith("memory_a.") else f"memory_a.rnn.{k}": v for k, v in rnn.items()}}
        torch.save({"model_state_dict": state}, tmp_path / f"rnn{i}.pt")
        with pytest.raises(ImportLayoutError, match=message) as e:
            import_policy(tmp_path / f"rnn{i}.pt", "rsl_rl")
        assert "\n" not in str(e.value)
    torch.save({"actor_state_dict": {"mlp.0.weight": torch.zeros(2, 4), "memory.rnn.weight_ih_l0": torch.zeros(4, 2)}},
               tmp_path / "other.pt")
    with pytest.raises(ImportLayoutError, match=r"memory at \['memory'\] where edgerl expects the actor's at rnn.rnn"):
        import_policy(tmp_path / "other.pt", "rsl_rl")

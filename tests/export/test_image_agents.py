"""Export of the real image agents (DQN on Impala-CNN, PPO on the Nature CNN) on a real ALE env,
at tiny sizes."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.config import to_dict
from edgerl.envs import space_env_info
from edgerl.export import export_policy, policy_checkpoint_payload, policy_from_checkpoint
from edgerl.runtime.contract import read_contract

pytest.importorskip("ale_py", reason="the image agents need the Atari extra: pip install 'edgerl[atari]'")

ENV = "ALE/Breakout-v5"


def _env_info(cfg) -> dict:
    """What the image trainers store as ``env``: spaces plus the preprocessing to replay."""
    from edgerl.algos.atari import ImageEnvConfig, make_image_env

    env = make_image_env(ENV, cfg, train=False)
    try:
        info = space_env_info(env)
    finally:
        env.close()
    pre = {f.name: getattr(cfg, f.name) for f in fields(ImageEnvConfig)}
    return {**info, "id": ENV, "preprocessing": {"kind": "atari", "grayscale": True, **pre}}


def _image_ckpt(path, algo: str, net: str = "impala"):
    from edgerl.algos.dqn import DQNAgent, DQNConfig
    from edgerl.algos.ppo import PPOAgent, PPOConfig

    agent_cls, cfg_cls = {"dqn": (DQNAgent, DQNConfig), "ppo": (PPOAgent, PPOConfig)}[algo]
    size = 32 if net == "impala" else 36  # the Nature CNN needs at least 36x36
    cfg = cfg_cls(net=net, frame_size=size, width=0.25, hidden=[16], max_episode_steps=50)
    info = _env_info(cfg)
    torch.manual_seed(0)
    agent = agent_cls(cfg, tuple(info["observation_space"]["shape"]), info["action_space"]["n"])
    save_checkpoint(path, {"kind": "train", "algo": algo, "env": info,
                           "config": {"run": {"env": ENV, "algo": algo}, "algo": to_dict(cfg), "prune": {}},
                           "agent": agent.state(), "counters": {"global_step": 11}})
    return path, agent


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 4, 32, 32), dtype=np.uint8)


def test_dqn_export_with_recorded_frames(tmp_path):
    ckpt, agent = _image_ckpt(tmp_path / "ckpt.pt", "dqn")
    report = export_policy(ckpt, recorded_steps=24)
    assert report.parity.n_obs == {"random": 256, "recorded": 24} and report.parity.worst == 0.0
    assert (report.obs_dtype, report.obs_shape, report.action_dtype) == ("uint8", [4, 32, 32], "int64")
    sess = ort.InferenceSession(report.onnx_path, providers=["CPUExecutionProvider"])
    for batch in (1, 5, 64):
        obs = _frames(batch, seed=batch)
        with torch.no_grad():
            greedy = agent.q_network.deterministic(torch.as_tensor(obs)).numpy()
        np.testing.assert_array_equal(sess.run(["action"], {"obs": obs})[0], greedy)
    contract = read_contract(report.contract_path)
    assert contract.discrete and contract.n == 4 and contract.obs_dtype == np.uint8 and contract.obs_shape == (4, 32, 32)


def test_ppo_fp16_export_drops_the_critic(tmp_path):
    ckpt, _ = _image_ckpt(tmp_path / "ckpt.pt", "ppo", net="nature")
    report = export_policy(ckpt, fp16=True, recorded_steps=0)
    assert report.precision == "fp16" and report.baked_in == ["argmax"]
    model = onnx.load(report.onnx_path)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    half = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16}
    assert convs and all(n.input[1] in half for n in convs)
    assert sum(n.op_type == "Gemm" for n in model.graph.node) == 2  # hidden + logits; no value head
    sess = ort.InferenceSession(report.onnx_path, providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(uint8)" and sess.get_outputs()[0].type == "tensor(int64)"


def test_image_policy_checkpoint_uses_checkpoint_names(tmp_path):
    ckpt_path, agent = _image_ckpt(tmp_path / "ckpt.pt", "ppo")
    ckpt = load_checkpoint(ckpt_path)
    payload = policy_checkpoint_payload("ppo", ckpt["env"], ckpt["config"], agent.deployed_nets())
    assert sorted(payload["agent"]["nets"]) == ["net"] and payload["agent"]["normalizer"] is None
    policy = policy_from_checkpoint(payload)
    assert sorted(policy.nets()) == ["net"]
    obs = torch.as_tensor(_frames(16))
    with torch.no_grad():
        np.testing.assert_array_equal(policy(obs).numpy(), agent.net.deterministic(obs).numpy())

"""Tiny MLP policy checkpoints for the C-export tests: SAC (with and without OFENet), PPO-MLP and
DQN-MLP on a discrete vector env, dense (train checkpoints) and compact (``edgerl compact``'s output).

edgerl's own PPO and DQN train image agents (Impala/Nature CNNs), so the discrete MLP policies are
built here through registered net types: PPO's actor is a ``sac_actor`` whose first output
(``mean``) are the logits and whose second the ignored extra head, the shape of an actor-critic's
``(logits, value)``; DQN's Q-network is an ``nn.Sequential`` of Linear layers with ELU, tanh and
SiLU registered as ``test_mlp_qnet`` (as an imported SB3/rsl_rl MLP would be).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.checkpoint import load_checkpoint, save_checkpoint
from edgerl.compact import compact_checkpoint
from edgerl.nets import net_spec, register_net
from edgerl.nets.mlp import ObsNormalizer, SquashedGaussianActor

LOW = [-2.0, 0.0, -0.5]
HIGH = [2.0, 1.0, 0.25]
CARTPOLE = {"id": "CartPole-v1",
            "observation_space": {"kind": "box", "shape": [4], "dtype": "float32",
                                  "low": [-4.8, None, -0.42, None], "high": [4.8, None, 0.42, None]},
            "action_space": {"kind": "discrete", "n": 2, "shape": [], "dtype": "int64", "start": 0}}


@register_net("test_mlp_qnet")
class MLPQNet(nn.Sequential):
    """Linear -> ELU -> Linear -> tanh -> Linear -> SiLU -> Linear: Q-values of ``n_actions``."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: list[int]) -> None:
        h1, h2, h3 = (int(h) for h in hidden)
        super().__init__(nn.Linear(obs_dim, h1), nn.ELU(alpha=0.7), nn.Linear(h1, h2), nn.Tanh(),
                         nn.Linear(h2, h3), nn.SiLU(), nn.Linear(h3, n_actions))
        self.obs_dim, self.n_actions = int(obs_dim), int(n_actions)

    def spec(self) -> dict[str, Any]:
        return {"obs_dim": self.obs_dim, "n_actions": self.n_actions,
                "hidden": [m.out_features for m in list(self)[:-1] if isinstance(m, nn.Linear)]}


def _config(algo: dict[str, Any]) -> dict[str, Any]:
    return {"run": {"env": "x"}, "algo": algo, "prune": {}}


def hopper_env() -> dict[str, Any]:
    """Hopper-v5's spaces (11 obs, 3 actions) with asymmetric action bounds."""
    from edgerl.envs import make_env, space_env_info

    env = make_env("Hopper-v5")
    info = copy.deepcopy(space_env_info(env))
    env.close()
    info["action_space"]["low"], info["action_space"]["high"] = list(LOW), list(HIGH)
    return info


def _stats(norm: ObsNormalizer, dim: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.5, 4.0, dim, dtype=torch.float64)
    norm.update(torch.randn(500, dim, generator=g, dtype=torch.float64) * scale + 1.0)


def sac_checkpoint(path: Path, env: dict[str, Any], ofenet: bool = False, seed: int = 0) -> Path:
    """A SAC train checkpoint (hidden 32x32; OFENet 2 layers x 8 with non-trivial BatchNorm stats)."""
    torch.manual_seed(seed)
    cfg = SACConfig(hidden=[32, 32], obs_norm=True, ofenet=ofenet, ofenet_layers=2, ofenet_units=8)
    agent = SACAgent(cfg, obs_dim=11, act_dim=3)
    _stats(agent.normalizer, 11, seed + 1)
    if ofenet:
        g = torch.Generator().manual_seed(seed + 2)
        with torch.no_grad():
            for layer in agent.ofenet.state_block.layers:
                bn = layer.bn
                bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.3)
                bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
                bn.weight.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
                bn.bias.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
            agent.ofenet.state_block.obs_in.weight.mul_(1.5)
    from edgerl.config import to_dict

    save_checkpoint(path, {"kind": "train", "algo": "sac", "env": env, "config": _config(to_dict(cfg)),
                           "agent": agent.state(), "hooks": {}, "counters": {"global_step": 1000}})
    return path


def discrete_checkpoint(path: Path, algo: str, seed: int = 0) -> Path:
    """A PPO-MLP (``sac_actor`` as logits net) or DQN-MLP (``test_mlp_qnet``) policy for CartPole-v1."""
    torch.manual_seed(seed)
    norm = ObsNormalizer((4,))
    _stats(norm, 4, seed + 1)
    if algo == "ppo":
        name, net = "net", SquashedGaussianActor(4, 2, [24, 24])
    else:
        name, net = "q_network", MLPQNet(4, 2, [24, 20, 16])
    nets = {name: {"spec": net_spec(net), "state": net.state_dict()}}
    spec = {"shape": [4], "clip": 5.0, "eps": 1e-8, "enabled": True}
    save_checkpoint(path, {"kind": "policy", "algo": algo, "env": CARTPOLE, "config": _config({"obs_norm": True}),
                           "agent": {"nets": nets, "normalizer": {"spec": spec, "state": norm.state_dict()}},
                           "counters": {"global_step": 500}, "source": None})
    return path


def compacted(path: Path, out: Path) -> Path:
    """``edgerl compact``'s policy checkpoint of ``path`` (random observations only)."""
    payload, _ = compact_checkpoint(load_checkpoint(path), recorded_steps=0, random_obs=256)
    save_checkpoint(out, payload)
    return out


def make_policy(kind: str, variant: str, folder: Path) -> Path:
    """``kind`` in sac, sac-ofenet, ppo-mlp, dqn-mlp; ``variant`` dense or compact."""
    folder.mkdir(parents=True, exist_ok=True)
    dense = folder / "dense.pt"
    if kind.startswith("sac"):
        sac_checkpoint(dense, hopper_env(), ofenet=kind == "sac-ofenet")
    else:
        discrete_checkpoint(dense, kind.split("-")[0])
    return dense if variant == "dense" else compacted(dense, folder / "compact.pt")

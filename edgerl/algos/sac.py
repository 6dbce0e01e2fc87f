"""Soft Actor-Critic (Haarnoja et al. 2018) for continuous control, CleanRL-style.

``SACAgent.update`` is the whole learning rule in one screen; ``train_sac`` is the environment
loop. Pruning hooks in through ``SACAgent.prunable()`` and the hooks passed to the loop, without
copying either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgerl.config import doc
from edgerl.nets import build_net, net_spec
from edgerl.nets.mlp import ObsNormalizer, QNetwork, SquashedGaussianActor


@dataclass
class SACConfig:
    """SAC hyperparameters (per-env values live in profiles/recipes/sac.yaml)."""

    hidden: list[int] = doc("Hidden widths of actor and critics, e.g. 256,256 (scale up: 1024,1024).", [256, 256])
    batch_size: int = doc("Minibatch size of each gradient update.", 256)
    buffer_size: int = doc("Replay buffer capacity (transitions).", 1_000_000)
    learning_starts: int = doc("Uniform-random warm-up steps before learning starts.", 5_000)
    gamma: float = doc("Discount factor.", 0.99)
    tau: float = doc("Polyak coefficient of the target critics.", 0.005)
    actor_lr: float = doc("Actor learning rate (Adam).", 3e-4)
    critic_lr: float = doc("Critic learning rate (Adam).", 1e-3)
    alpha_lr: float = doc("Entropy-coefficient learning rate.", 1e-3)
    alpha: float = doc("Fixed entropy coefficient; 0 = tune automatically toward target_entropy.", 0.0)
    target_entropy_scale: float = doc("Target entropy = -scale * action dim (auto tuning).", 1.0)
    reward_scale: float = doc("Multiply rewards by this before learning.", 1.0)
    policy_frequency: int = doc("Update the actor (and alpha) every N critic updates.", 1)
    obs_norm: bool = doc("Normalise observations with running statistics (baked into exports).", False)
    ofenet: bool = doc("Learn an OFENet feature extractor on the observations (needs --ofenet support).", False)


class SACAgent:
    """Actor, twin critics with Polyak targets, entropy coefficient, and their optimizers."""

    def __init__(self, cfg: SACConfig, obs_dim: int, act_dim: int):
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.normalizer = ObsNormalizer((obs_dim,), enabled=cfg.obs_norm)
        self.actor = SquashedGaussianActor(obs_dim, act_dim, cfg.hidden)
        self.qf1 = QNetwork(obs_dim, act_dim, cfg.hidden)
        self.qf2 = QNetwork(obs_dim, act_dim, cfg.hidden)
        self.qf1_target = build_net(net_spec(self.qf1))
        self.qf2_target = build_net(net_spec(self.qf2))
        self.qf1_target.load_state_dict(self.qf1.state_dict())
        self.qf2_target.load_state_dict(self.qf2.state_dict())
        self.log_alpha = nn.Parameter(torch.zeros(()))
        self.target_entropy = -cfg.target_entropy_scale * act_dim
        self.updates = 0
        self.make_optimizers()

    # -- optimizers --------------------------------------------------------------------------
    def make_optimizers(self) -> None:
        """(Re)create the optimizers over the current parameters."""
        self.actor_opt = _adam(self.actor.parameters(), self.cfg.actor_lr)
        self.critic_opt = _adam([*self.qf1.parameters(), *self.qf2.parameters()], self.cfg.critic_lr)
        self.alpha_opt = _adam([self.log_alpha], self.cfg.alpha_lr)
        for t in (self.qf1_target, self.qf2_target):
            t.requires_grad_(False)
        self._target_params = [*self.qf1_target.parameters(), *self.qf2_target.parameters()]
        self._online_params = [*self.qf1.parameters(), *self.qf2.parameters()]

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_opt, "critic": self.critic_opt, "alpha": self.alpha_opt}

    def alpha(self) -> torch.Tensor:
        if self.cfg.alpha > 0:
            return torch.tensor(self.cfg.alpha)
        return self.log_alpha.detach().exp()

    # -- acting ------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Squashed action in [-1, 1] for one raw observation."""
        x = self.normalizer(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0))
        a = self.actor.deterministic(x) if deterministic else self.actor.sample(x)[0]
        return a[0].numpy()

    # -- learning ----------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One SAC gradient step on a replay minibatch. Returns detached metrics (no host sync)."""
        cfg = self.cfg
        obs = self.normalizer(batch["obs"])
        next_obs = self.normalizer(batch["next_obs"])
        actions, rewards, terminated = batch["actions"], batch["rewards"], batch["terminated"]
        alpha = self.alpha()

        with torch.no_grad():
            next_a, next_logp = self.actor.sample(next_obs)
            qf_next = torch.min(self.qf1_target(next_obs, next_a), self.qf2_target(next_obs, next_a))
            y = cfg.reward_scale * rewards + (1.0 - terminated) * cfg.gamma * (qf_next - alpha * next_logp)

        q1, q2 = self.qf1(obs, actions), self.qf2(obs, actions)
        qf_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
        self.critic_opt.zero_grad(set_to_none=True)
        qf_loss.backward()
        self.critic_opt.step()
        metrics = {"qf_loss": qf_loss.detach(), "q1": q1.detach().mean()}

        if self.updates % cfg.policy_frequency == 0:
            for _ in range(cfg.policy_frequency):
                self._critics_requires_grad(False)
                pi, logp = self.actor.sample(obs)
                q_pi = torch.min(self.qf1(obs, pi), self.qf2(obs, pi))
                actor_loss = (alpha * logp - q_pi).mean()
                self.actor_opt.zero_grad(set_to_none=True)
                actor_loss.backward()
                self.actor_opt.step()
                self._critics_requires_grad(True)
                if cfg.alpha <= 0:
                    alpha_loss = -(self.log_alpha.exp() * (logp.detach() + self.target_entropy)).mean()
                    self.alpha_opt.zero_grad(set_to_none=True)
                    alpha_loss.backward()
                    self.alpha_opt.step()
            metrics.update(actor_loss=actor_loss.detach(), entropy=-logp.detach().mean(), alpha=alpha)

        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._online_params, cfg.tau)
        self.updates += 1
        return metrics

    def _critics_requires_grad(self, flag: bool) -> None:
        for p in self._online_params:
            p.requires_grad_(flag)

    # -- pruning interface -------------------------------------------------------------------
    def prunable(self) -> dict[str, dict[str, Any]]:
        """Networks pruned during training: model, example inputs, heads and mirrored twins."""
        obs = torch.zeros(2, self.obs_dim)
        act = torch.zeros(2, self.act_dim)
        return {
            "actor": {"model": self.actor, "example_inputs": (obs,), "heads": self.actor.heads(), "twins": []},
            "qf1": {"model": self.qf1, "example_inputs": (obs, act), "heads": self.qf1.heads(), "twins": [self.qf1_target]},
            "qf2": {"model": self.qf2, "example_inputs": (obs, act), "heads": self.qf2.heads(), "twins": [self.qf2_target]},
        }

    def after_surgery(self) -> None:
        """Refresh cached parameter lists after networks changed shape."""
        self._target_params = [*self.qf1_target.parameters(), *self.qf2_target.parameters()]
        self._online_params = [*self.qf1.parameters(), *self.qf2.parameters()]

    # -- deployment --------------------------------------------------------------------------
    def deployed_nets(self) -> dict[str, nn.Module]:
        """The modules the deployed policy needs (normaliser -> actor)."""
        return {"normalizer": self.normalizer, "actor": self.actor}

    # -- checkpointing -----------------------------------------------------------------------
    NETS = ("actor", "qf1", "qf2", "qf1_target", "qf2_target")

    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild and continue this agent, as tensors and plain data."""
        return {
            "nets": {n: {"spec": net_spec(getattr(self, n)), "state": getattr(self, n).state_dict()} for n in self.NETS},
            "normalizer": self.normalizer.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "optim": {k: o.state_dict() for k, o in self.optimizers().items()},
            "updates": self.updates,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`, rebuilding networks at their saved (possibly pruned) widths."""
        for name in self.NETS:
            net = build_net(state["nets"][name]["spec"])
            net.load_state_dict(state["nets"][name]["state"])
            setattr(self, name, net)
        self.normalizer.load_state_dict(state["normalizer"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.make_optimizers()
        for k, o in self.optimizers().items():
            o.load_state_dict(state["optim"][k])
        self.updates = int(state["updates"])


def _adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused CPU/GPU kernel where available (fewer kernel launches per step)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)

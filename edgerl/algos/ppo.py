"""Proximal Policy Optimization (Schulman et al. 2017) for image envs, CleanRL-style.

``compute_gae`` and ``PPOAgent.update`` are the learning rule; ``train_ppo`` (ppo_train.py) is
the rollout loop. One network (``ActorCriticCNN``) holds the shared encoder and both heads, so
pruning it once prunes the policy and the value function together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical

from edgerl.algos.agent import PrunableNet, to_cpu
from edgerl.algos.atari import ImageEnvConfig
from edgerl.config import doc
from edgerl.nets.impala import ActorCriticCNN, image_encoder_spec
from edgerl.nets.registry import net_entries, restore_nets


@dataclass
class PPOConfig(ImageEnvConfig):
    """PPO hyperparameters (per-env values live in profiles/recipes/ppo.yaml)."""

    net: str = doc("Image encoder: impala (Impala-CNN) or nature (Nature-DQN CNN).", "impala")
    width: float = doc("Width factor tau: conv channels x tau (Impala 16,32,32; Nature 32,64,64).", 1.0, min=0.01)
    impoola: bool = doc("Impala: global average pooling before the Linear (the Impoola variant).", False)
    hidden: list[int] = doc("Hidden widths of the fully connected layers after the encoder.", [256], min=1)
    num_envs: int = doc("Parallel environments (gymnasium SyncVectorEnv).", 8, min=1)
    num_steps: int = doc("PPO: steps per env per rollout (batch = num_envs x num_steps).", 128, min=1)
    num_minibatches: int = doc("PPO: minibatches per epoch.", 4, min=1)
    update_epochs: int = doc("PPO: epochs over each rollout.", 3, min=1)
    lr: float = doc("Learning rate (Adam); the paper uses base x 2/width for wider nets.", 3.5e-4, min=0)
    adam_eps: float = doc("Adam epsilon.", 1e-5, min=0)
    anneal_lr: bool = doc("PPO: decay the learning rate linearly to 0 over training.", False)
    gamma: float = doc("Discount factor.", 0.99, min=0, max=1)
    gae_lambda: float = doc("PPO: GAE lambda.", 0.95, min=0, max=1)
    clip_coef: float = doc("PPO: policy ratio clip range (and value clip range).", 0.2, min=0)
    clip_vloss: bool = doc("PPO: clip the value loss around the rollout's values.", True)
    ent_coef: float = doc("PPO: entropy bonus coefficient.", 0.01, min=0)
    vf_coef: float = doc("PPO: value loss coefficient.", 0.5, min=0)
    max_grad_norm: float = doc("Clip the global gradient norm to this (0 = off).", 0.5, min=0)
    norm_adv: bool = doc("PPO: normalise advantages per minibatch.", True)
    norm_reward: bool = doc("PPO: divide rewards by the running std of the discounted return.", True)


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
                gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns for a ``[T, N]`` rollout.

    ``dones[t]`` means the episode ended after step ``t`` (nothing is bootstrapped across it; a
    truncated episode's bootstrap value is already folded into ``rewards[t]``). ``last_value`` is
    V of the observation after the last step.
    """
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(T)):
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * alive - values[t]
        next_adv = delta + gamma * lam * alive * next_adv
        advantages[t] = next_adv
        next_value = values[t]
    return advantages, advantages + values


class ReturnNormalizer:
    """Scales rewards by the running std of the discounted return (as gymnasium's
    ``NormalizeReward``), clipped to +-clip; its statistics travel in the checkpoint."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, eps: float = 1e-8):
        self.gamma, self.clip, self.eps = gamma, clip, eps
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        self.returns = self.returns * self.gamma + rewards
        b_mean, b_var, n = float(self.returns.mean()), float(self.returns.var()), len(self.returns)
        delta, total = b_mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var = (self.var * self.count + b_var * n + delta**2 * self.count * n / total) / total
        self.count = total
        self.returns[dones] = 0.0
        return np.clip(rewards / np.sqrt(self.var + self.eps), -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"returns": torch.from_numpy(self.returns.copy()), "mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = state["returns"].numpy().astype(np.float64)
        self.mean, self.var, self.count = float(state["mean"]), float(state["var"]), float(state["count"])


class PPOAgent:
    """Actor-critic network, its optimizer and the reward normaliser."""

    NETS = ("net",)

    def __init__(self, cfg: PPOConfig, obs_shape: tuple[int, ...], n_actions: int,
                 device: torch.device | str = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.obs_shape, self.n_actions = tuple(obs_shape), int(n_actions)
        encoder = image_encoder_spec(cfg.net, obs_shape, cfg.width, cfg.hidden, cfg.impoola)
        self.net = ActorCriticCNN(encoder, n_actions).to(self.device)
        self.reward_norm = ReturnNormalizer(cfg.num_envs, cfg.gamma)
        self.updates = 0
        self.make_optimizers()

    # -- optimizers --------------------------------------------------------------------------
    def make_optimizers(self) -> None:
        """(Re)create the optimizer over the current parameters."""
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr, eps=self.cfg.adam_eps)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"net": self.optimizer}

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    # -- acting ------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """Sampled actions, their log-probabilities and state values for a batch of observations."""
        logits, value = self.net(torch.as_tensor(obs).to(self.device))
        dist = Categorical(logits=logits)
        action = dist.sample()
        return action.cpu().numpy(), dist.log_prob(action), value

    @torch.no_grad()
    def value(self, obs: np.ndarray) -> torch.Tensor:
        """State values (on the agent's device)."""
        return self.net.value(torch.as_tensor(obs).to(self.device))

    @torch.no_grad()
    def greedy(self, obs: np.ndarray) -> int:
        """The deployed policy's action for one observation."""
        return int(self.net.deterministic(torch.as_tensor(obs).to(self.device).unsqueeze(0))[0])

    # -- learning ----------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """PPO epochs over one flattened rollout (obs, actions, logprobs, values, advantages,
        returns). Returns detached metrics of the last minibatch."""
        cfg = self.cfg
        n = batch["obs"].shape[0]
        for _ in range(cfg.update_epochs):
            for mb in torch.randperm(n, device=self.device).chunk(cfg.num_minibatches):
                logits, newvalue = self.net(batch["obs"][mb])
                dist = Categorical(logits=logits)
                logratio = dist.log_prob(batch["actions"][mb]) - batch["logprobs"][mb]
                ratio = logratio.exp()
                entropy = dist.entropy().mean()

                mb_adv = batch["advantages"][mb]
                if cfg.norm_adv and len(mb) > 1:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio, -mb_adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()

                mb_ret, mb_val = batch["returns"][mb], batch["values"][mb]
                v_loss = (newvalue - mb_ret).pow(2)
                if cfg.clip_vloss:
                    v_clipped = mb_val + (newvalue - mb_val).clamp(-cfg.clip_coef, cfg.clip_coef)
                    v_loss = torch.max(v_loss, (v_clipped - mb_ret).pow(2))
                v_loss = 0.5 * v_loss.mean()

                loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.max_grad_norm > 0:
                    nn.utils.clip_grad_norm_(self.net.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
        self.updates += 1
        with torch.no_grad():
            approx_kl = ((ratio - 1) - logratio).mean()
            clipfrac = ((ratio - 1).abs() > cfg.clip_coef).float().mean()
        return {"loss": loss.detach(), "actor_loss": pg_loss.detach(), "value_loss": v_loss.detach(),
                "entropy": entropy.detach(), "approx_kl": approx_kl, "clipfrac": clipfrac}

    # -- pruning interface -------------------------------------------------------------------
    def prunable(self) -> dict[str, PrunableNet]:
        """The shared actor-critic, pruned once for both heads (which are never pruned)."""
        obs = torch.zeros(2, *self.obs_shape, dtype=torch.uint8, device=self.device)
        return {"net": {"model": self.net, "example_inputs": (obs,), "heads": self.net.heads(), "twins": []}}

    def after_surgery(self) -> None:
        """Nothing is cached over the network's parameters (the pruner keeps the optimizer)."""

    # -- deployment --------------------------------------------------------------------------
    def deployed_nets(self) -> dict[str, nn.Module]:
        """The deployed policy: uint8 frames -> ``net.deterministic`` (argmax of the logits)."""
        return {"policy": self.net}

    # -- checkpointing -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild and continue this agent, as tensors and plain data."""
        return to_cpu({
            "nets": net_entries(self, self.NETS),
            "optim": {k: o.state_dict() for k, o in self.optimizers().items()},
            "reward_norm": self.reward_norm.state_dict(),
            "updates": self.updates,
        })

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`, rebuilding the network at its saved (possibly pruned) widths."""
        restore_nets(self, state["nets"], self.NETS)
        self.net.to(self.device)
        self.make_optimizers()
        for k, o in self.optimizers().items():
            o.load_state_dict(state["optim"][k])
        self.reward_norm.load_state_dict(state["reward_norm"])
        self.updates = int(state["updates"])

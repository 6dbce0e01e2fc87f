"""Soft Actor-Critic (Haarnoja et al. 2018) for continuous control, CleanRL-style.

``SACAgent.update`` is the whole learning rule in one screen; ``train_sac`` is the environment
loop. Pruning hooks in through ``SACAgent.prunable()`` and the hooks passed to the loop, without
copying either.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgerl.algos.agent import PrunableNet, to_cpu
from edgerl.config import doc, from_sources
from edgerl.errors import CheckpointError, ConfigError
from edgerl.nets import build_net, net_spec
from edgerl.nets.mlp import ObsNormalizer, QNetwork, SquashedGaussianActor
from edgerl.nets.ofenet import FeatureQNetwork, OFENet, ofenet_widths
from edgerl.nets.registry import net_entries, restore_nets


@dataclass
class SACConfig:
    """SAC hyperparameters (per-env values live in profiles/recipes/sac.yaml)."""

    hidden: list[int] = doc("Hidden widths of actor and critics, e.g. 256,256 (scale up: 1024,1024).", [256, 256], min=1, min_len=1)
    batch_size: int = doc("Minibatch size of each gradient update.", 256, min=1)
    buffer_size: int = doc("Replay buffer capacity (transitions).", 1_000_000, min=1)
    learning_starts: int = doc("Uniform-random warm-up steps before learning starts.", 5_000, min=0)
    gamma: float = doc("Discount factor.", 0.99, min=0, max=1)
    tau: float = doc("Polyak coefficient of the target critics.", 0.005, min=0, max=1)
    actor_lr: float = doc("Actor learning rate (Adam).", 3e-4, min=0)
    critic_lr: float = doc("Critic learning rate (Adam).", 1e-3, min=0)
    alpha_lr: float = doc("Entropy-coefficient learning rate.", 1e-3, min=0)
    alpha: float = doc("Fixed entropy coefficient; 0 = tune automatically toward target_entropy.", 0.0, min=0)
    target_entropy_scale: float = doc("Target entropy = -scale * action dim (auto tuning).", 1.0)
    reward_scale: float = doc("Multiply rewards by this before learning.", 1.0)
    policy_frequency: int = doc("Update the actor (and alpha) every N critic updates.", 1, min=1)
    obs_norm: bool = doc("Normalise observations with running statistics (baked into exports).", False)
    ofenet: bool = doc("Learn an OFENet feature extractor; the actor reads phi(s), the critics phi(s, a).", False)
    ofenet_layers: int = doc("OFENet: dense layers per block (6 for Hopper/Walker2d/Ant, 8 for HalfCheetah/Humanoid).", 6, min=1)
    ofenet_units: int = doc("OFENet: units per dense layer (40 or 30: 240 per block).", 40, min=1)
    ofenet_state_widths: list[int] = doc("OFENet: explicit state-block widths, e.g. a pruned run's (overrides layers x units).", [], min=1)
    ofenet_action_widths: list[int] = doc("OFENet: explicit state-action-block widths (overrides layers x units).", [], min=1)
    ofenet_target_dim: int = doc("OFENet: predict the first N entries of the next observation (0: all).", 0, min=0)
    ofenet_lr: float = doc("OFENet learning rate (Adam on the next-observation MSE).", 3e-4, min=0)
    ofenet_pretrain_steps: int = doc("OFENet updates on the random warm-up data before SAC starts (at most one per warm-up transition).", 10_000, min=0)
    actor_hidden: list[int] = doc("Actor widths when they differ from --hidden (e.g. a pruned actor trained from scratch).", [], min=1)
    num_envs: int = doc("Parallel environments stepped as one gymnasium vector env (1: a plain env).", 1, min=1)
    vector_mode: str = doc("Vector env with --num-envs > 1: sync (one process) or async (a process per env).", "sync")
    updates_per_step: float = doc("Gradient updates per environment transition (summed over envs), e.g. 0.25 "
                                  "with 4 envs = one update per vector step.", 1.0, min=0)
    autocast: str = doc("Network forward passes of the update in this precision: none (fp32) or bf16 "
                        "(autocast; losses and targets stay fp32).", "none")


class SACNets(nn.Module):
    """The online networks as one module, named like the agent's attributes (``ofenet.*``,
    ``actor.*``, ``qf1.*``, ``qf2.*``), so that one pruning graph sees OFENet's features flow
    into the actor and critics: removing a state-block unit removes the input columns that read
    it. Used for tracing only; the agent calls its networks directly."""

    def __init__(self, actor: nn.Module, qf1: nn.Module, qf2: nn.Module, ofenet: OFENet | None = None):
        super().__init__()
        self.ofenet = ofenet
        self.actor, self.qf1, self.qf2 = actor, qf1, qf2

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.ofenet is None:
            return (*self.actor(obs), self.qf1(obs, act), self.qf2(obs, act))
        phi_s = self.ofenet.state_features(obs)
        phi_sa = self.ofenet.action_features(phi_s, act)
        return (self.ofenet.head(phi_sa), *self.actor(phi_s), self.qf1(phi_sa), self.qf2(phi_sa))


class SACAgent:
    """Actor, twin critics with Polyak targets, entropy coefficient, and their optimizers."""

    def __init__(self, cfg: SACConfig, obs_dim: int, act_dim: int, device: torch.device | str = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.normalizer = ObsNormalizer((obs_dim,), enabled=cfg.obs_norm)
        self.ofenet = self._make_ofenet() if cfg.ofenet else None
        actor_in = obs_dim if self.ofenet is None else self.ofenet.state_dim
        self.actor = SquashedGaussianActor(actor_in, act_dim, cfg.actor_hidden or cfg.hidden)
        self.qf1 = self._make_critic()
        self.qf2 = self._make_critic()
        self.qf1_target = build_net(net_spec(self.qf1))
        self.qf2_target = build_net(net_spec(self.qf2))
        self.qf1_target.load_state_dict(self.qf1.state_dict())
        self.qf2_target.load_state_dict(self.qf2.state_dict())
        self.log_alpha = nn.Parameter(torch.zeros((), device=self.device))
        self._fixed_alpha = torch.tensor(cfg.alpha, device=self.device)  # made once: no copy per update
        self.target_entropy = -cfg.target_entropy_scale * act_dim
        self.updates = 0
        self.ofenet_updates = 0
        self.gates: Any = None
        """Bernoulli unit gates (``edgerl.prune.gates.GateSet``) when ``--prune gates`` attaches them."""
        self.actor_gate_reach: str | None = None
        """Key prefix of gates the actor's loss also trains (``ofenet.state_block.`` under
        ``--gate-actor-grad``: the frozen state block's gates; its weights stay frozen)."""
        self._nets_to_device()
        self.make_optimizers()

    def _nets_to_device(self) -> None:
        """Move the normaliser and every network to ``device`` (a no-op on the CPU)."""
        for name in ("normalizer", *self._nets()):
            getattr(self, name).to(self.device)

    def _make_ofenet(self) -> OFENet:
        cfg = self.cfg
        state = ofenet_widths(cfg.ofenet_layers, cfg.ofenet_units, cfg.ofenet_state_widths)
        action = ofenet_widths(cfg.ofenet_layers, cfg.ofenet_units, cfg.ofenet_action_widths)
        if cfg.ofenet_layers < 0 or min([*state, *action, 1]) < 1:
            raise ConfigError(f"OFENet needs >= 0 layers of >= 1 unit; got --ofenet-layers {cfg.ofenet_layers}, "
                              f"state widths {state}, state-action widths {action}")
        if not 0 <= cfg.ofenet_target_dim <= self.obs_dim:
            raise ConfigError(f"--ofenet-target-dim must be in 0..{self.obs_dim} (0: the whole observation), "
                              f"got {cfg.ofenet_target_dim}")
        return OFENet(self.obs_dim, self.act_dim, state, action, cfg.ofenet_target_dim or None)

    def _make_critic(self) -> nn.Module:
        if self.ofenet is None:
            return QNetwork(self.obs_dim, self.act_dim, self.cfg.hidden)
        return FeatureQNetwork(self.ofenet.state_action_dim, self.cfg.hidden)

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
        if self.ofenet is not None:
            self.ofenet_opt = _adam(self.ofenet.parameters(), self.cfg.ofenet_lr)
            self.ofenet.requires_grad_(False).eval()  # only update_ofenet trains it

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts: dict[str, torch.optim.Optimizer] = {"actor": self.actor_opt, "critic": self.critic_opt,
                                                  "alpha": self.alpha_opt}
        if self.ofenet is not None:
            opts["ofenet"] = self.ofenet_opt
        return opts

    def alpha(self) -> torch.Tensor:
        if self.cfg.alpha > 0:
            return self._fixed_alpha
        return self.log_alpha.detach().exp()

    # -- acting ------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Squashed action(s) in [-1, 1] for one raw observation ``[obs_dim]`` or a batch
        ``[n, obs_dim]`` (deterministic: the deployed one)."""
        gates = self.gates.deterministic() if deterministic and self.gates is not None else nullcontext()
        x = torch.as_tensor(obs, dtype=torch.float32).to(self.device)
        single = x.dim() == 1
        with gates:
            x = self.features(self.normalizer(x.unsqueeze(0) if single else x))
            a = self.actor.deterministic(x) if deterministic else self.actor.sample(x)[0]
        return (a[0] if single else a).cpu().numpy()

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """What the actor reads: the normalised observation, or OFENet's phi(s)."""
        return obs if self.ofenet is None else self.ofenet.state_features(obs)

    def critic_input(self, s: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What the critics read: (observation, action), or OFENet's phi(s, a) computed from
        ``s = phi(s)``. OFENet is frozen here, but gradients still reach ``a``."""
        return (s, a) if self.ofenet is None else (self.ofenet.action_features(s, a),)

    # -- learning ----------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One SAC gradient step on a replay minibatch. Returns detached metrics (no host sync)."""
        cfg = self.cfg
        obs = self.normalizer(batch["obs"])
        next_obs = self.normalizer(batch["next_obs"])
        actions, rewards, terminated = batch["actions"], batch["rewards"], batch["terminated"]
        alpha = self.alpha()
        metrics = {} if self.ofenet is None else self._update_ofenet(obs, actions, next_obs)
        s, s_next = self.features(obs), self.features(next_obs)  # phi(s) with OFENet, else obs

        amp = self._autocast
        with torch.no_grad():
            with amp():
                next_a, next_logp = self.actor.sample(s_next)
                x_next = self.critic_input(s_next, next_a)
                qf_next = torch.min(self.qf1_target(*x_next), self.qf2_target(*x_next))
            y = cfg.reward_scale * rewards + (1.0 - terminated) * cfg.gamma * (qf_next.float() - alpha * next_logp.float())

        with amp():
            x = self.critic_input(s, actions)
            q1, q2 = self.qf1(*x), self.qf2(*x)
        qf_loss = F.mse_loss(q1.float(), y) + F.mse_loss(q2.float(), y)
        self.critic_opt.zero_grad(set_to_none=True)
        qf_loss.backward()
        self.critic_opt.step()
        metrics.update(qf_loss=qf_loss.detach(), q1=q1.detach().float().mean())

        if self.updates % cfg.policy_frequency == 0:
            for i in range(cfg.policy_frequency):
                self._critics_requires_grad(False)
                s_pi = s
                if i == 0 and self.actor_gate_reach is not None and self.gates.mode == "sample":  # once per update
                    with self.gates.reaching(self.actor_gate_reach):
                        s_pi = self.features(obs)
                with amp():
                    pi, logp = self.actor.sample(s_pi)
                    x_pi = self.critic_input(s_pi.detach(), pi)  # the critic's view of the state is no lever
                    q_pi = torch.min(self.qf1(*x_pi), self.qf2(*x_pi))
                logp = logp.float()
                actor_loss = (alpha * logp - q_pi.float()).mean()
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

    def _autocast(self) -> Any:
        """The precision context of the update's forward passes (``--autocast``)."""
        if self.cfg.autocast == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _critics_requires_grad(self, flag: bool) -> None:
        for p in self._online_params:
            p.requires_grad_(flag)

    # -- OFENet ------------------------------------------------------------------------------
    def update_ofenet(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One OFENet step on a raw replay minibatch (the pre-training phase)."""
        return self._update_ofenet(self.normalizer(batch["obs"]), batch["actions"],
                                   self.normalizer(batch["next_obs"]))

    def _update_ofenet(self, obs: torch.Tensor, actions: torch.Tensor, next_obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Auxiliary update: predict the next observation (MSE); BatchNorm on batch statistics.
        Afterwards OFENet is frozen and in eval mode (running statistics) for producing features."""
        ofenet = self.ofenet.requires_grad_(True).train()
        pred = ofenet(obs, actions)
        ofe_loss = F.mse_loss(pred, next_obs[:, : ofenet.target_dim])
        self.ofenet_opt.zero_grad(set_to_none=True)
        ofe_loss.backward()
        self.ofenet_opt.step()
        ofenet.requires_grad_(False).eval()
        self.ofenet_updates += 1
        return {"ofe_loss": ofe_loss.detach()}

    # -- pruning interface -------------------------------------------------------------------
    def prunable(self) -> dict[str, PrunableNet]:
        """Networks pruned during training: model, example inputs, heads and mirrored twins.

        With OFENet the networks are coupled (the actor and critics read its features): one
        joint entry, ``"sac"`` (see :meth:`joint_prunable`).
        """
        if self.ofenet is not None:
            return {"sac": self.joint_prunable()}
        obs = torch.zeros(2, self.obs_dim, device=self.device)
        act = torch.zeros(2, self.act_dim, device=self.device)
        return {
            "actor": {"model": self.actor, "example_inputs": (obs,), "heads": self.actor.heads(), "twins": []},
            "qf1": {"model": self.qf1, "example_inputs": (obs, act), "heads": self.qf1.heads(), "twins": [self.qf1_target]},
            "qf2": {"model": self.qf2, "example_inputs": (obs, act), "heads": self.qf2.heads(), "twins": [self.qf2_target]},
        }

    def joint_prunable(self) -> PrunableNet:
        """All online networks as one :class:`SACNets` (gates always use this form). The twin
        holds the Polyak targets, plus throw-away copies of OFENet and the actor so that it has
        the model's structure."""
        def copy_of(net: nn.Module) -> nn.Module:
            return build_net(net_spec(net)).to(self.device)

        model = SACNets(self.actor, self.qf1, self.qf2, self.ofenet)
        twin = SACNets(copy_of(self.actor), self.qf1_target, self.qf2_target,
                       None if self.ofenet is None else copy_of(self.ofenet))
        heads = [*self.actor.heads(), *self.qf1.heads(), *self.qf2.heads(),
                 *([] if self.ofenet is None else self.ofenet.heads())]
        inputs = (torch.zeros(2, self.obs_dim, device=self.device), torch.zeros(2, self.act_dim, device=self.device))
        return {"model": model, "example_inputs": inputs, "heads": heads, "twins": [twin]}

    def after_surgery(self) -> None:
        """Refresh cached parameter lists after networks changed shape."""
        self._target_params = [*self.qf1_target.parameters(), *self.qf2_target.parameters()]
        self._online_params = [*self.qf1.parameters(), *self.qf2.parameters()]
        if self.ofenet is not None:
            self.ofenet.requires_grad_(False)  # pruning creates new (trainable) parameters
            self.actor.obs_dim = self.ofenet.state_dim  # phi(s) shrinks with the state block

    # -- deployment --------------------------------------------------------------------------
    def deployed_nets(self) -> dict[str, nn.Module]:
        """The modules the deployed policy needs, in order: normaliser -> (OFENet state block) -> actor."""
        if self.ofenet is None:
            return {"normalizer": self.normalizer, "actor": self.actor}
        return {"normalizer": self.normalizer, "ofenet_state": self.ofenet.state_block, "actor": self.actor}

    # -- checkpointing -----------------------------------------------------------------------
    NETS = ("actor", "qf1", "qf2", "qf1_target", "qf2_target")

    def _nets(self) -> tuple[str, ...]:
        return self.NETS if self.ofenet is None else ("ofenet", *self.NETS)

    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild and continue this agent, as tensors and plain data.

        With OFENet, ``nets`` also holds ``ofenet_state`` (the deployed state block, a view of
        ``ofenet``), so the nets named by :meth:`deployed_nets` are all in the checkpoint.
        """
        nets = net_entries(self, self._nets())
        if self.ofenet is not None:
            block = self.ofenet.state_block
            nets["ofenet_state"] = {"spec": net_spec(block), "state": block.state_dict()}
        return to_cpu({
            "nets": nets,
            "normalizer": self.normalizer.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "optim": {k: o.state_dict() for k, o in self.optimizers().items()},
            "updates": self.updates,
            "ofenet_updates": self.ofenet_updates,
        })

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], device: torch.device | str = "cpu") -> SACAgent:
        """The whole agent of a loaded SAC ``train`` checkpoint (critics and targets included),
        built from its stored config and env spaces, at its saved (possibly pruned) widths.

        Raises:
            CheckpointError: Not a SAC train checkpoint (a policy checkpoint keeps the actor only).
        """
        if ckpt.get("kind") != "train" or ckpt.get("algo") != "sac":
            raise CheckpointError(f"a {ckpt.get('kind')!r} checkpoint of algo {ckpt.get('algo')!r} holds no SAC agent; "
                                  "pass the ckpt.pt that edgerl train --algo sac wrote")
        info = ckpt["env"]
        agent = cls(from_sources(SACConfig, ckpt["config"]["algo"]), info["observation_space"]["shape"][0],
                    info["action_space"]["shape"][0], device)
        agent.load_state(ckpt["agent"])
        return agent

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`, rebuilding networks at their saved (possibly pruned) widths."""
        if ("ofenet" in state["nets"]) != (self.ofenet is not None):
            raise CheckpointError(f"checkpoint {'has' if 'ofenet' in state['nets'] else 'has no'} OFENet but the "
                                  f"config says ofenet={self.cfg.ofenet}; resume with the checkpoint's own config")
        restore_nets(self, state["nets"], self._nets())
        self._nets_to_device()
        self.normalizer.load_state_dict(state["normalizer"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.make_optimizers()
        for k, o in self.optimizers().items():
            o.load_state_dict(state["optim"][k])
        self.updates = int(state["updates"])
        self.ofenet_updates = int(state.get("ofenet_updates", 0))


def _adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused CPU/GPU kernel where available (fewer kernel launches per step)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)

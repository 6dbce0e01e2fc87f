"""Deep Q-learning (Mnih et al. 2015) with double Q (van Hasselt et al. 2016), n-step returns and
optional prioritized replay, for image envs, CleanRL-style.

``nstep_returns`` and ``DQNAgent.update`` are the learning rule, ``FrameReplay`` the memory,
``train_dqn`` (dqn_train.py) the environment loop. The target network is a twin of the online
network: pruning must remove the same channels from both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgerl.algos.agent import PrunableNet, to_cpu
from edgerl.algos.atari import ImageEnvConfig
from edgerl.algos.prioritized import SumTree
from edgerl.config import doc
from edgerl.errors import CheckpointError, ConfigError
from edgerl.nets import build_net, net_spec
from edgerl.nets.impala import QNetworkCNN, image_encoder_spec
from edgerl.nets.registry import net_entries, restore_nets
from edgerl.runtime.fileio import atomic_write


@dataclass
class DQNConfig(ImageEnvConfig):
    """DQN hyperparameters (per-env values live in profiles/recipes/dqn.yaml)."""

    net: str = doc("Image encoder: impala (Impala-CNN) or nature (Nature-DQN CNN).", "impala")
    width: float = doc("Width factor tau: conv channels x tau (Impala 16,32,32; Nature 32,64,64).", 1.0, min=0.01)
    impoola: bool = doc("Impala: global average pooling before the Linear (the Impoola variant).", False)
    hidden: list[int] = doc("Hidden widths of the fully connected layers after the encoder.", [256], min=1)
    num_envs: int = doc("Parallel environments (gymnasium SyncVectorEnv).", 4, min=1)
    buffer_size: int = doc("Replay capacity in transitions (all envs; one uint8 frame each).", 100_000, min=1)
    batch_size: int = doc("Minibatch size of each gradient update.", 32, min=1)
    lr: float = doc("Learning rate (Adam); the paper uses base x 2/width for wider nets.", 1e-4, min=0)
    adam_eps: float = doc("Adam epsilon.", 1.5e-4, min=0)
    gamma: float = doc("Discount factor.", 0.99, min=0, max=1)
    n_step: int = doc("DQN: n-step returns.", 3, min=1)
    double_q: bool = doc("DQN: double Q-learning (online net picks, target net evaluates).", True)
    learning_starts: int = doc("Env steps before learning starts.", 20_000, min=0)
    train_every: int = doc("DQN: one gradient update per this many env steps (summed over envs).", 4, min=1)
    target_update: int = doc("DQN: copy the online net into the target every N env steps.", 8_000, min=1)
    start_e: float = doc("DQN: initial exploration epsilon.", 1.0, min=0, max=1)
    end_e: float = doc("DQN: final exploration epsilon.", 0.01, min=0, max=1)
    exploration_fraction: float = doc("DQN: fraction of training over which epsilon decays linearly.", 0.1, min=0, max=1)
    max_grad_norm: float = doc("Clip the global gradient norm to this (0 = off).", 10.0, min=0)
    prioritized: bool = doc("DQN: prioritized replay (proportional, Schaul et al. 2016).", False)
    per_alpha: float = doc("DQN: priority exponent of prioritized replay.", 0.5, min=0)
    per_beta: float = doc("DQN: initial importance-sampling exponent (annealed to 1).", 0.4, min=0, max=1)


def nstep_returns(rewards: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                  gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n-step returns of windows ``[B, n]`` of rewards and end flags starting at each sample.

    Returns ``(returns, discount, steps, cut)``: the discounted reward sum up to the first episode
    end (or n steps), ``gamma**steps`` (0 after a termination) to multiply the bootstrap value by,
    the number of steps summed, and whether the window ended in a truncation (bootstrap from that
    episode's last observation rather than from the observation ``n`` steps later).
    """
    B, n = rewards.shape
    done = terminated | truncated
    alive = np.concatenate([np.ones((B, 1), bool), np.cumprod(~done[:, :-1], axis=1).astype(bool)], axis=1)
    returns = (rewards * alive * gamma ** np.arange(n)).sum(1)
    ended = done.any(1)
    steps = np.where(ended, done.argmax(1) + 1, n)
    last = steps - 1
    term = ended & terminated[np.arange(B), last]
    cut = ended & ~term
    discount = np.where(term, 0.0, gamma ** steps.astype(np.float64))
    return returns.astype(np.float32), discount.astype(np.float32), steps, cut


class FrameReplay:
    """Replay memory of per-env frame streams: each step stores only its observation's newest
    frame (uint8), so 4-frame stacks cost one frame each; stacks and n-step returns are rebuilt
    when sampling.

    Layout ``[T, N]`` (time slot, env) with ``T = capacity // num_envs``. ``first[t]`` marks a
    reset observation (frames before it in a stack repeat it, as ``FrameStackObservation``
    pads). A truncated episode's last observation is kept aside (``final``) for bootstrapping.
    """

    def __init__(self, capacity: int, num_envs: int, obs_shape: tuple[int, ...], frame_stack: int,
                 n_step: int, gamma: float, prioritized: bool = False, alpha: float = 0.5):
        if obs_shape[0] % frame_stack:
            raise ConfigError(f"observation {obs_shape} does not split into {frame_stack} stacked frames")
        self.T, self.N, self.k = int(capacity) // num_envs, int(num_envs), int(frame_stack)
        if self.T < n_step + frame_stack + 1:
            raise ConfigError(f"--buffer-size {capacity} is too small for {num_envs} envs: need at least "
                              f"{(n_step + frame_stack + 1) * num_envs} transitions")
        self.c = obs_shape[0] // frame_stack
        self.obs_shape = tuple(obs_shape)
        self.n, self.gamma, self.alpha = int(n_step), float(gamma), float(alpha)
        self.frames = np.zeros((self.T, self.N, self.c, *obs_shape[1:]), dtype=np.uint8)
        self.actions = np.zeros((self.T, self.N), dtype=np.int64)
        self.rewards = np.zeros((self.T, self.N), dtype=np.float32)
        self.terminated = np.zeros((self.T, self.N), dtype=bool)
        self.truncated = np.zeros((self.T, self.N), dtype=bool)
        self.first = np.zeros((self.T, self.N), dtype=bool)
        self.final: dict[int, dict[int, np.ndarray]] = {}
        self.t = 0  # steps written so far (absolute time of the next write)
        self.tree = SumTree(self.T * self.N) if prioritized else None
        self.max_priority = 1.0

    # -- writing -----------------------------------------------------------------------------
    def valid_range(self) -> tuple[int, int]:
        """Absolute times ``[lo, hi]`` that can be sampled (full stack and n steps ahead stored)."""
        newest = self.t - 1
        lo = 0 if self.t <= self.T else newest - self.T + self.k
        return lo, newest - self.n

    @property
    def size(self) -> int:
        return min(self.t, self.T) * self.N

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
            truncated: np.ndarray, first: np.ndarray, final_obs: np.ndarray) -> None:
        """One vector step: observations ``[N, *obs_shape]`` before acting, the step's results,
        which observations were reset observations, and the episodes' last observations."""
        s, slot = self.t, self.t % self.T
        self.final.pop(s - self.T, None)
        self.frames[slot] = obs[:, -self.c:]
        self.actions[slot], self.rewards[slot] = actions, rewards
        self.terminated[slot], self.truncated[slot], self.first[slot] = terminated, truncated, first
        cut = np.flatnonzero(truncated & ~terminated)
        if len(cut):
            self.final[s] = {int(e): final_obs[e, -self.c:].copy() for e in cut}
        self.t += 1
        if self.tree is not None:
            self._refresh_priorities(s)

    def _refresh_priorities(self, s: int) -> None:
        lo, hi = self.valid_range()
        envs = np.arange(self.N)
        if hi >= lo:
            self.tree.set((hi % self.T) * self.N + envs, self.max_priority ** self.alpha)
        gone = [t for t in range(s - self.T, s - self.T + self.k) if 0 <= t < lo]  # overwritten or stack cut
        for t in gone:
            self.tree.set((t % self.T) * self.N + envs, 0.0)

    # -- sampling ----------------------------------------------------------------------------
    def _stack(self, t: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Stacked observations ``[B, k*c, H, W]`` at absolute times ``t`` of envs ``e``."""
        pos = np.arange(self.k)
        window = t[:, None] - (self.k - 1) + pos
        first = self.first[window % self.T, e[:, None]]
        start = (first * pos).max(1)  # frames before the episode's first repeat it
        window = t[:, None] - (self.k - 1) + np.maximum(pos, start[:, None])
        frames = self.frames[window % self.T, e[:, None]]
        return frames.reshape(len(t), self.k * self.c, *frames.shape[3:])

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float = 1.0) -> dict[str, torch.Tensor]:
        """A minibatch with n-step returns, bootstrap discounts and importance weights."""
        lo, hi = self.valid_range()
        if hi < lo:
            raise ValueError("not enough steps in the replay memory to sample: raise --learning-starts")
        if self.tree is None:
            t = rng.integers(lo, hi + 1, batch_size)
            e = rng.integers(0, self.N, batch_size)
            weights: np.ndarray = np.ones(batch_size, dtype=np.float32)
        else:
            leaf = self.tree.sample(batch_size, rng)
            slot, e = leaf // self.N, leaf % self.N
            newest = self.t - 1
            t = newest - (newest - slot) % self.T
            prob = self.tree.get(leaf) / self.tree.total
            weights = ((hi - lo + 1) * self.N * prob) ** -beta
            weights = (weights / weights.max()).astype(np.float32)
        window = (t[:, None] + np.arange(self.n)) % self.T
        returns, discount, steps, cut = nstep_returns(
            self.rewards[window, e[:, None]], self.terminated[window, e[:, None]],
            self.truncated[window, e[:, None]], self.gamma)
        next_obs = self._stack(t + self.n, e)
        for i in np.flatnonzero(cut):  # bootstrap from the truncated episode's last observation
            u = int(t[i] + steps[i] - 1)
            last = self._stack(np.array([u]), e[i : i + 1])[0]
            next_obs[i] = np.concatenate([last[self.c:], self.final[u][int(e[i])]])
        return {
            "obs": torch.from_numpy(self._stack(t, e)), "actions": torch.from_numpy(self.actions[t % self.T, e]),
            "returns": torch.from_numpy(returns), "discount": torch.from_numpy(discount),
            "next_obs": torch.from_numpy(next_obs), "weights": torch.from_numpy(weights),
            "index": torch.from_numpy((t % self.T) * self.N + e),
        }

    def update_priorities(self, index: torch.Tensor, td_abs: torch.Tensor, eps: float = 1e-6) -> None:
        """New priorities ``(|td| + eps) ** alpha`` of sampled transitions (prioritized only)."""
        if self.tree is None:
            return
        p = td_abs.detach().double().cpu().numpy() + eps
        self.max_priority = max(self.max_priority, float(p.max()))
        self.tree.set(index.cpu().numpy(), p**self.alpha)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, next_obs: np.ndarray) -> None:
        """Write the stored steps (oldest first) and the envs' current observations atomically.

        ``next_obs`` (what follows the newest step) lets a resumed run end those episodes as
        truncations, since its envs restart.
        """
        times = np.arange(max(0, self.t - self.T), self.t)
        slots = times % self.T
        keys = [(t, e) for t, d in sorted(self.final.items()) for e in sorted(d)]
        arrays = {name: getattr(self, name)[slots] for name in ("frames", "actions", "rewards", "terminated", "truncated", "first")}
        arrays["priorities"] = (self.tree.get(np.arange(self.T * self.N)).reshape(self.T, self.N)[slots]
                                if self.tree is not None else np.zeros((len(times), self.N)))
        arrays["final_keys"] = np.array(keys, dtype=np.int64).reshape(-1, 2)
        arrays["final_frames"] = np.array([self.final[t][e] for t, e in keys], dtype=np.uint8).reshape(-1, *self.frames.shape[2:])
        arrays["next_frames"] = np.asarray(next_obs)[:, -self.c:]
        arrays["meta"] = np.array([self.t, self.N, self.k, self.c], dtype=np.int64)
        arrays["max_priority"] = np.array([self.max_priority])

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        atomic_write(path, write)

    def load(self, path: str | os.PathLike) -> None:
        """Restore :meth:`save` into this (equally shaped) memory; the newest step of each episode
        still running becomes a truncation whose last observation is the saved ``next_obs``."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                t_abs, n_envs, k, c = (int(v) for v in data["meta"])
                if (n_envs, k, c) != (self.N, self.k, self.c) or data["frames"].shape[2:] != self.frames.shape[2:]:
                    raise CheckpointError(f"{path}: replay memory of {n_envs} envs x {data['frames'].shape[2:]} frames "
                                          f"does not match this run ({self.N} envs x {self.frames.shape[2:]})")
                keep = min(len(data["frames"]), self.T)
                times = np.arange(t_abs - keep, t_abs)
                for name in ("frames", "actions", "rewards", "terminated", "truncated", "first"):
                    getattr(self, name)[times % self.T] = data[name][-keep:]
                self.final = {}
                for (t, e), frame in zip(data["final_keys"], data["final_frames"], strict=True):
                    if t >= t_abs - keep:
                        self.final.setdefault(int(t), {})[int(e)] = frame
                next_frames, priorities = data["next_frames"], data["priorities"][-keep:]
                self.max_priority = float(data["max_priority"][0])
        except CheckpointError:
            raise
        except Exception as e:  # zipfile/npz errors vary; all mean the file is unusable
            raise CheckpointError(f"{path}: replay memory is unreadable ({type(e).__name__}: {e})") from e
        self.t = t_abs
        if t_abs > 0:
            s = (t_abs - 1) % self.T
            running = np.flatnonzero(~(self.terminated[s] | self.truncated[s]))
            self.truncated[s, running] = True
            self.final.setdefault(t_abs - 1, {}).update({int(e): next_frames[e].copy() for e in running})
        if self.tree is not None:
            lo, hi = self.valid_range()
            self.tree.set(np.arange(self.T * self.N), 0.0)
            for t, p in zip(times, priorities, strict=True):
                if lo <= t <= hi:
                    self.tree.set((t % self.T) * self.N + np.arange(self.N), np.where(p > 0, p, self.max_priority ** self.alpha))


class DQNAgent:
    """Online Q-network, its target twin and their optimizer."""

    NETS = ("q_network", "target_network")

    def __init__(self, cfg: DQNConfig, obs_shape: tuple[int, ...], n_actions: int,
                 device: torch.device | str = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.obs_shape, self.n_actions = tuple(obs_shape), int(n_actions)
        encoder = image_encoder_spec(cfg.net, obs_shape, cfg.width, cfg.hidden, cfg.impoola)
        self.q_network = QNetworkCNN(encoder, n_actions).to(self.device)
        self.target_network = build_net(net_spec(self.q_network)).to(self.device)
        self.sync_target()
        self.updates = 0
        self.make_optimizers()

    # -- optimizers --------------------------------------------------------------------------
    def make_optimizers(self) -> None:
        """(Re)create the optimizer over the current parameters; the target is never trained."""
        self.optimizer = torch.optim.Adam(self.q_network.parameters(), lr=self.cfg.lr, eps=self.cfg.adam_eps)
        self.target_network.requires_grad_(False)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"q": self.optimizer}

    def sync_target(self) -> None:
        """Hard update: target <- online (same widths: pruning keeps the twins identical)."""
        self.target_network.load_state_dict(self.q_network.state_dict())

    # -- acting ------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions for a batch of observations."""
        return self.q_network(torch.as_tensor(obs).to(self.device)).argmax(-1).cpu().numpy()

    def greedy(self, obs: np.ndarray) -> int:
        """The deployed policy's action for one observation."""
        return int(self.act(obs[None])[0])

    # -- learning ----------------------------------------------------------------------------
    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One (double) DQN step on an n-step minibatch. Returns detached metrics; ``td_abs``
        holds the per-sample |TD error| for prioritized replay."""
        cfg = self.cfg
        with torch.no_grad():
            next_q_target = self.target_network(batch["next_obs"])
            if cfg.double_q:
                next_a = self.q_network(batch["next_obs"]).argmax(-1, keepdim=True)
                next_q = next_q_target.gather(1, next_a).squeeze(1)
            else:
                next_q = next_q_target.max(-1).values
            y = batch["returns"] + batch["discount"] * next_q
        q = self.q_network(batch["obs"]).gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
        loss = (batch["weights"] * F.smooth_l1_loss(q, y, reduction="none")).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.q_network.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        return {"qf_loss": loss.detach(), "q": q.detach().mean(), "td_abs": (y - q).detach().abs()}

    # -- pruning interface -------------------------------------------------------------------
    def prunable(self) -> dict[str, PrunableNet]:
        """The online Q-network; its target is a twin pruned with the same indices."""
        obs = torch.zeros(2, *self.obs_shape, dtype=torch.uint8, device=self.device)
        return {"q_network": {"model": self.q_network, "example_inputs": (obs,), "heads": self.q_network.heads(),
                              "twins": [self.target_network]}}

    def after_surgery(self) -> None:
        """Nothing is cached over the networks' parameters (the pruner keeps the optimizer)."""

    # -- deployment --------------------------------------------------------------------------
    def deployed_nets(self) -> dict[str, nn.Module]:
        """The deployed policy: uint8 frames -> ``q_network.deterministic`` (greedy action)."""
        return {"policy": self.q_network}

    # -- checkpointing -----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild and continue this agent, as tensors and plain data."""
        return to_cpu({
            "nets": net_entries(self, self.NETS),
            "optim": {k: o.state_dict() for k, o in self.optimizers().items()},
            "updates": self.updates,
        })

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`, rebuilding networks at their saved (possibly pruned) widths."""
        restore_nets(self, state["nets"], self.NETS)
        self.q_network.to(self.device)
        self.target_network.to(self.device)
        self.make_optimizers()
        for k, o in self.optimizers().items():
            o.load_state_dict(state["optim"][k])
        self.updates = int(state["updates"])

"""What gets exported: a policy module mapping a raw observation batch to environment actions.

Each wrapper is the deployed policy in one ``forward`` (in the manner of rsl_rl's ``as_onnx()``):
observation -> normaliser -> network -> deterministic head -> squash -> rescale. The exported
graph therefore emits actions the environment accepts, with nothing left for the robot to do.

The wrappers can also run their networks in float16 (:meth:`DeployedPolicy.to_fp16`): the
observation, the normaliser and the action stay float32; each layer with weights casts its input
to its weights' dtype, so the graph carries explicit Casts into float16 (what strongly typed
TensorRT >= 11 needs to build FP16 kernels) even where a network upcasts internally (the image
encoders scale uint8 pixels in float32).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from edgerl.nets.mlp import ObsNormalizer


class DeployedPolicy(nn.Module):
    """Base of the exported policies: ``forward(obs[batch, *obs_shape]) -> action[batch, ...]``."""

    discrete: bool = False
    """True when the action is an integer index (argmax), False for continuous actions."""

    def __init__(self, net: nn.Module, normalizer: ObsNormalizer | None) -> None:
        super().__init__()
        self.net = net
        self.normalizer = normalizer if normalizer is not None and normalizer.enabled else None
        self.compute_dtype = torch.float32
        self.net_paths: dict[str, str] = {"net": "net"}
        """Checkpoint net name -> submodule path in this wrapper (set by ``policy_from_checkpoint``)."""
        self.eval().requires_grad_(False)

    @property
    def recurrent(self) -> nn.Module | None:
        """The network when it carries a hidden state (a :class:`~edgerl.nets.recurrent.RecurrentMLP`:
        ``forward(obs, *state) -> (action, *state)``), None for a feed-forward policy."""
        return self.net if getattr(self.net, "state_names", None) else None

    def initial_state(self, batch: int) -> tuple[torch.Tensor, ...]:
        """The float32 state at episode start: zeros (``()`` for a feed-forward policy)."""
        net = self.recurrent
        return () if net is None else net.zero_state(batch)

    def step(self, obs: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One control step: ``(action, next state)`` (a feed-forward policy passes ``()`` through)."""
        if self.recurrent is None:
            return self(obs), ()
        action, *new = self(obs, *state)
        return action, tuple(new)

    @staticmethod
    def reset_state(state: tuple[torch.Tensor, ...], starts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``state`` (each ``[layers, B, hidden]``) zeroed in the streams where ``starts[B]`` (bool)
        marks an episode start, kept in the others."""
        keep = (~starts.bool()).to(torch.float32).view(1, -1, 1)
        return tuple(s * keep for s in state)

    @torch.no_grad()
    def run_sequence(self, obs: torch.Tensor, starts: torch.Tensor | None = None,
                     step: Callable[[torch.Tensor, tuple[torch.Tensor, ...]], tuple[torch.Tensor, tuple[torch.Tensor, ...]]]
                     | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Actions for ``obs[T, B, *obs_shape]``: B streams of T steps, the state fed back from step
        to step, zero at ``t = 0`` and wherever ``starts[T, B]`` (bool) marks an episode start.
        ``step`` replaces :meth:`step` (e.g. ``ArgmaxPolicy.score_step`` for the scores).

        Returns:
            ``actions[T, B, ...]`` and the state after each step (each ``[T, layers, B, hidden]``).
        """
        step = step or self.step
        state = self.initial_state(obs.shape[1])
        actions, states = [], []
        for t in range(obs.shape[0]):
            if starts is not None and t > 0 and bool(starts[t].any()):
                state = self.reset_state(state, starts[t])
            action, state = step(obs[t], state)
            actions.append(action)
            states.append(state)
        return torch.stack(actions), tuple(torch.stack([s[i] for s in states]) for i in range(len(state)))

    def nets(self) -> dict[str, nn.Module]:
        """The wrapped networks under their checkpoint names (e.g. ``{"actor": ...}``)."""
        return {name: self.get_submodule(path) for name, path in self.net_paths.items()}

    @property
    def baked_in(self) -> list[str]:
        """Steps the exported graph performs, in order (recorded in ``contract.json``)."""
        return ["observation_normalizer"] if self.normalizer is not None else []

    @property
    def precision(self) -> str:
        """``fp32`` or ``fp16`` (dtype of the network's weights)."""
        return "fp16" if self.compute_dtype == torch.float16 else "fp32"

    def to_fp16(self) -> DeployedPolicy:
        """A copy whose networks compute in float16; normaliser, input and output (and a recurrent
        policy's state) stay float32."""
        half = copy.deepcopy(self)
        for net in half.nets().values():
            net.half()
            for module in net.modules():
                if next(module.parameters(recurse=False), None) is not None:
                    module.register_forward_pre_hook(_cast_to_weights)
        half.compute_dtype = torch.float16
        return half

    def _normalized(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observation -> float32, normalised if the policy has a normaliser."""
        x = obs if obs.dtype == torch.float32 else obs.to(torch.float32)
        return x if self.normalizer is None else self.normalizer(x)

    @staticmethod
    def _float32(t: torch.Tensor) -> torch.Tensor:
        return t if t.dtype == torch.float32 else t.to(torch.float32)


class SquashedGaussianPolicy(DeployedPolicy):
    """SAC's deployed policy: ``low + (tanh(mean(features(normalise(obs)))) + 1) / 2 * (high - low)``.

    ``net`` is a :class:`~edgerl.nets.mlp.SquashedGaussianActor` (its forward returns
    ``(mean, log_std)``; only the mean is used, so ``log_std`` is pruned from the graph).
    ``features`` is an optional block between normaliser and actor (OFENet's state block).
    """

    def __init__(self, actor: nn.Module, normalizer: ObsNormalizer | None,
                 low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray,
                 features: nn.Module | None = None) -> None:
        super().__init__(actor, normalizer)
        self.features = features
        if features is not None:
            self.features.eval().requires_grad_(False)
            self.net_paths = {"features": "features", "net": "net"}
        low_t = torch.as_tensor(np.asarray(low, dtype=np.float32))
        high_t = torch.as_tensor(np.asarray(high, dtype=np.float32))
        self.register_buffer("low", low_t)
        self.register_buffer("half_range", 0.5 * (high_t - low_t))

    @property
    def baked_in(self) -> list[str]:
        features = ["feature_extractor"] if self.features is not None else []
        return [*super().baked_in, *features, "deterministic_head", "tanh_squash", "action_rescale"]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self._normalized(obs)
        if self.features is not None:
            x = self.features(x)
        mean = self._float32(self.net(x)[0])
        return self.low + (torch.tanh(mean) + 1.0) * self.half_range


class ArgmaxPolicy(DeployedPolicy):
    """Discrete deployed policy (DQN, PPO with a categorical head): ``start + argmax(scores)``.

    ``net`` maps the float32 observation to Q-values or logits ``[batch, n]`` (image encoders
    scale uint8 pixels by 1/255 themselves). If it returns a tuple (e.g. PPO's ``(logits,
    value)``), element ``select`` holds the scores. The action is int64.
    """

    discrete = True

    def __init__(self, net: nn.Module, normalizer: ObsNormalizer | None = None, select: int = 0,
                 start: int = 0) -> None:
        super().__init__(net, normalizer)
        self.select = int(select)
        self.start = int(start)

    @property
    def baked_in(self) -> list[str]:
        memory = [f"{self.recurrent.rnn_type}_memory"] if self.recurrent is not None else []
        steps = [*super().baked_in, *memory, "argmax"]
        return [*steps, "action_offset"] if self.start else steps

    def scores(self, obs: torch.Tensor) -> torch.Tensor:
        """Float32 Q-values or logits ``[batch, n]`` whose argmax is the action (feed-forward)."""
        out = self.net(self._normalized(obs))
        if isinstance(out, (tuple, list)):
            out = out[self.select]
        return self._float32(out)

    def score_step(self, obs: torch.Tensor, state: tuple[torch.Tensor, ...]
                   ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """A recurrent policy's step as ``(scores, next state)`` (:meth:`step` gives the argmax)."""
        y, *new = self.net(self._normalized(obs), *state)
        return self._float32(y), tuple(self._float32(s) for s in new)

    def _argmax(self, scores: torch.Tensor) -> torch.Tensor:
        action = torch.argmax(scores, dim=-1)
        return action + self.start if self.start else action

    def forward(self, obs: torch.Tensor, *state: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """``obs -> action``; a recurrent policy: ``(obs, *state) -> (action, *next state)`` (state
        zeros, an episode's first step, when not given)."""
        if self.recurrent is None:
            return self._argmax(self.scores(obs))
        scores, new = self.score_step(obs, state or self.initial_state(obs.shape[0]))
        return (self._argmax(scores), *new)


class ActionChainPolicy(DeployedPolicy):
    """A continuous policy whose post-processing is data: ``offset + scale * clip([tanh](net(x)))``.

    The deployed function of policies imported from other libraries (``edgerl import``): SB3
    PPO/A2C clip the Gaussian mean to the action bounds, SB3 SAC/TD3 and CleanRL TD3 squash with
    tanh and unscale, rsl_rl / Isaac Lab clip (``clip_actions``) then scale (``action_scale``) and
    offset (default joint positions). Each step is optional and per action element; the chain is
    described by :func:`action_chain_entry` (stored as ``env["action_chain"]`` of the checkpoint).
    """

    def __init__(self, net: nn.Module, normalizer: ObsNormalizer | None, *, act_dim: int, squash: bool = False,
                 clip_low: Sequence[float] | None = None, clip_high: Sequence[float] | None = None,
                 scale: Sequence[float] | None = None, offset: Sequence[float] | None = None) -> None:
        super().__init__(net, normalizer)
        self.squash = bool(squash)
        lo = np.full(act_dim, -np.inf) if clip_low is None else _vector(clip_low, act_dim, "clip low", -np.inf)
        hi = np.full(act_dim, np.inf) if clip_high is None else _vector(clip_high, act_dim, "clip high")
        if np.any(lo > hi):
            raise ValueError(f"action clip low {lo.tolist()} exceeds high {hi.tolist()}")
        self.clips = bool(np.isfinite(lo).any() or np.isfinite(hi).any())
        self.scales = scale is not None and not np.all(_vector(scale, act_dim, "scale") == 1.0)
        self.offsets = offset is not None and not np.all(_vector(offset, act_dim, "offset") == 0.0)
        sc = np.ones(act_dim) if scale is None else _vector(scale, act_dim, "scale")
        off = np.zeros(act_dim) if offset is None else _vector(offset, act_dim, "offset")
        self.register_buffer("clip_low", torch.as_tensor(lo.astype(np.float32)))
        self.register_buffer("clip_high", torch.as_tensor(hi.astype(np.float32)))
        self.register_buffer("scale", torch.as_tensor(sc.astype(np.float32)))
        self.register_buffer("offset", torch.as_tensor(off.astype(np.float32)))
        # Output bounds (for the contract and the export's bounds check): the chain applied to the
        # range of the clipped (squashed) network output.
        pre_lo = np.maximum(lo, -1.0) if self.squash else lo
        pre_hi = np.minimum(hi, 1.0) if self.squash else hi
        with np.errstate(invalid="ignore"):
            a, b = pre_lo * sc + off, pre_hi * sc + off
        a, b = np.where(sc == 0, off, a), np.where(sc == 0, off, b)
        low, high = np.minimum(a, b), np.maximum(a, b)
        self.register_buffer("low", torch.as_tensor(low.astype(np.float32)))
        self.register_buffer("high", torch.as_tensor(high.astype(np.float32)))
        finite = np.isfinite(low) & np.isfinite(high)
        self.register_buffer("half_range", torch.as_tensor(
            np.where(finite, 0.5 * (high - low), np.maximum(1.0, np.abs(sc))).astype(np.float32)))

    @property
    def baked_in(self) -> list[str]:
        memory = [f"{self.recurrent.rnn_type}_memory"] if self.recurrent is not None else []
        steps = [*super().baked_in, *memory, "deterministic_head"]
        steps += ["tanh_squash"] if self.squash else []
        steps += ["action_clip"] if self.clips else []
        steps += ["action_scale"] if self.scales else []
        return [*steps, "action_offset"] if self.offsets else steps

    def action_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of the emitted actions (float64, infinite where the chain does not bound them)."""
        return self.low.numpy().astype(np.float64), self.high.numpy().astype(np.float64)

    def forward(self, obs: torch.Tensor, *state: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """``obs -> action``; a recurrent policy: ``(obs, *state) -> (action, *next state)`` (state
        zeros, an episode's first step, when not given)."""
        x = self._normalized(obs)
        if self.recurrent is None:
            return self._chain(self._float32(self.net(x)))
        y, *new = self.net(x, *(state or self.initial_state(obs.shape[0])))
        return (self._chain(self._float32(y)), *(self._float32(s) for s in new))

    def _chain(self, y: torch.Tensor) -> torch.Tensor:
        """The action chain on the network's float32 output."""
        if self.squash:
            y = torch.tanh(y)
        if self.clips:
            y = torch.clamp(y, self.clip_low, self.clip_high)
        if self.scales:
            y = y * self.scale
        return y + self.offset if self.offsets else y


def _vector(values: Sequence[float], n: int, what: str, fill: float = np.inf) -> np.ndarray:
    arr = np.asarray([fill if v is None else v for v in np.ravel(np.asarray(values, dtype=object))],
                     dtype=np.float64)
    if arr.size == 1:
        arr = np.full(n, float(arr[0]))
    if arr.size != n:
        raise ValueError(f"action {what} has {arr.size} entries; the action has {n}")
    return arr


def _cast_to_weights(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: cast floating inputs to the dtype of ``module``'s own weights."""
    dtype = next(module.parameters(recurse=False)).dtype
    return tuple(a.to(dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() and a.dtype != dtype else a
                 for a in args)

"""The student: a new deployed policy of the teacher's kind, and the outputs the losses compare.

The student is built by the teacher algorithm's export adapter (``edgerl.export.registry``), so it
computes the same deployed function shape (normalise -> MLP mean -> tanh -> rescale, or argmax)
and is saved as a ``kind: "policy"`` checkpoint that compact, export, deploy, bench and run take.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from edgerl.errors import CheckpointError, ConfigError
from edgerl.export.registry import export_adapter
from edgerl.export.wrappers import (
    ActionChainPolicy,
    ArgmaxPolicy,
    DeployedPolicy,
    SquashedGaussianPolicy,
)
from edgerl.nets import build_net, net_spec
from edgerl.nets.mlp import ObsNormalizer, SquashedGaussianActor


def check_supported(policy: DeployedPolicy) -> None:
    """Distillation knows squashed Gaussian (SAC), action-chain (imported: SB3 PPO/A2C, rsl_rl, skrl,
    CleanRL PPO, with or without an LSTM/GRU memory) and argmax (PPO, DQN, sb3-contrib's recurrent
    PPO) policies."""
    if not isinstance(policy, (SquashedGaussianPolicy, ActionChainPolicy, ArgmaxPolicy)):
        raise ConfigError(f"cannot distil a {type(policy).__name__}: edgerl distill supports squashed Gaussian "
                          "(SAC), imported action-chain and argmax (PPO, DQN) policies")


def squashed(policy: DeployedPolicy) -> bool:
    """Whether the raw outputs go through tanh before the action chain (the ``action`` loss then
    compares tanh of them; an unsquashed chain compares the raw outputs themselves)."""
    return isinstance(policy, SquashedGaussianPolicy) or (isinstance(policy, ActionChainPolicy) and policy.squash)


def raw_outputs(policy: DeployedPolicy, obs: torch.Tensor) -> torch.Tensor:
    """What the distillation loss compares: the pre-tanh action mean ``[B, act_dim]`` of a squashed
    Gaussian policy, the network output before the action chain of an imported policy, or the
    scores (Q-values/logits) ``[B, n]`` of an argmax policy."""
    if isinstance(policy, ArgmaxPolicy):
        return policy.scores(obs)
    if isinstance(policy, ActionChainPolicy):
        return policy._float32(policy.net(policy._normalized(obs)))
    x = policy._normalized(obs)
    if policy.features is not None:
        x = policy.features(x)
    return policy._float32(policy.net(x)[0])


def raw_sequence(policy: DeployedPolicy, obs: torch.Tensor, starts: torch.Tensor,
                 state: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """:func:`raw_outputs` of a recurrent policy (an action-chain or argmax wrapper of a
    ``RecurrentMLP``) along ``obs[T, B, ...]`` from ``state`` (default: zeros), the state zeroed
    wherever ``starts[T, B]`` (bool) is True: ``([T, B, out], last state)``. Gradients flow (the
    student trains through it; the teacher's labels are taken under ``no_grad``). The memory runs
    once per stretch between the steps where some stream starts an episode, not once per step."""
    state = policy.initial_state(obs.shape[1]) if state is None else state
    cuts = [0, *(int(t) for t in torch.nonzero(starts[1:].any(dim=1)).flatten() + 1), obs.shape[0]]
    out = []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        if bool(starts[a].any()):
            state = policy.reset_state(state, starts[a])
        y, *new = policy.net.forward_sequence(policy._normalized(obs[a:b]), *state)
        out.append(policy._float32(y))
        state = tuple(policy._float32(s) for s in new)
    return torch.cat(out), state


def raw_stream(policy: DeployedPolicy, obs: torch.Tensor, starts: np.ndarray) -> torch.Tensor:
    """:func:`raw_outputs` of ``obs[n, ...]``: independent states for a feed-forward policy, one
    stream in order (memory zeroed where ``starts[n]`` is True) for a recurrent one."""
    if policy.recurrent is None:
        return raw_outputs(policy, obs)
    flags = torch.as_tensor(np.asarray(starts, dtype=bool))[:, None]
    return raw_sequence(policy, obs[:, None], flags)[0][:, 0]


def _scaled_ints(value: Any, scale: float) -> Any:
    if isinstance(value, list):
        return [_scaled_ints(v, scale) for v in value]
    return max(1, round(int(value) * scale))


def student_nets(teacher: DeployedPolicy, env: dict[str, Any], widths: list[int],
                 channel_scale: float, rnn_hidden: int = 0) -> dict[str, nn.Module]:
    """Fresh student networks under their checkpoint names.

    SAC: an MLP actor on the (normalised) observation; OFENet's state block is not kept, the
    student learns the teacher's whole function. PPO/DQN: the teacher's network type with the
    encoder's conv channels scaled by ``channel_scale`` and its fully connected layers at ``widths``.
    Imported MLPs: the same activations at ``widths``; with an LSTM/GRU memory, the teacher's kind
    and layers of it at ``rnn_hidden`` units (0: the teacher's), then the MLP at ``widths``.
    """
    if any(int(w) < 1 for w in widths):
        raise ConfigError(f"--widths must be positive integers, got {widths}")
    if isinstance(teacher, SquashedGaussianPolicy):
        obs_dim = int(np.prod(env["observation_space"]["shape"]))
        act_dim = int(teacher.low.numel())
        return {"actor": SquashedGaussianActor(obs_dim, act_dim, [int(w) for w in widths])}
    if not channel_scale > 0:
        raise ConfigError(f"--channel-scale must be positive, got {channel_scale}")
    (name, net), = teacher.nets().items()
    spec = copy.deepcopy(net_spec(net))
    if spec["type"] in ("mlp", "rnn_mlp"):  # imported MLPs (edgerl import): same activations, the student's widths
        spec["kwargs"]["hidden"] = [int(w) for w in widths]
        if spec["type"] == "rnn_mlp" and rnn_hidden:
            spec["kwargs"]["rnn_hidden"] = int(rnn_hidden)
        return {name: build_net(spec)}
    encoder = spec["kwargs"].get("encoder")
    if not isinstance(encoder, dict):
        raise ConfigError(f"cannot size a student for a {spec['type']} network: it has no image encoder spec; "
                          "pass --init with a smaller checkpoint of the same kind")
    encoder["kwargs"]["channels"] = _scaled_ints(encoder["kwargs"]["channels"], channel_scale)
    encoder["kwargs"]["hidden"] = [int(w) for w in widths]
    return {name: build_net(spec)}


def build_student(teacher: DeployedPolicy, ckpt: dict[str, Any], nets: dict[str, nn.Module],
                  normalizer: ObsNormalizer | None) -> DeployedPolicy:
    """The student's deployed policy, built like any checkpoint's, with trainable networks."""
    adapter = export_adapter(ckpt["algo"])
    policy = adapter.build(nets, normalizer, ckpt["env"])
    paths = {id(m): path for path, m in reversed(list(policy.named_modules()))}
    policy.net_paths = {name: paths[id(m)] for name, m in nets.items()}
    for net in policy.nets().values():
        net.requires_grad_(True)
    return policy


def init_nets(init_policy: DeployedPolicy, teacher: DeployedPolicy) -> dict[str, nn.Module]:
    """The networks of a pruned/compacted policy, copied to start the student from.

    Raises:
        CheckpointError: The init policy does not act in the teacher's action space.
    """
    if type(init_policy) is not type(teacher):
        raise CheckpointError(f"--init holds a {type(init_policy).__name__}, the teacher a {type(teacher).__name__}; "
                              "initialise from a checkpoint of the teacher's kind")
    kinds = [p.recurrent.rnn_type if p.recurrent is not None else None for p in (init_policy, teacher)]
    if kinds[0] != kinds[1]:
        said = [f"{'an' if k == 'lstm' else 'a'} {k.upper()} memory" if k else "no memory" for k in kinds]
        raise CheckpointError(f"--init has {said[0]}, the teacher {said[1]}; initialise from a checkpoint "
                              "of the teacher's kind")
    if isinstance(teacher, SquashedGaussianPolicy) and not (
            torch.equal(init_policy.low, teacher.low) and torch.equal(init_policy.half_range, teacher.half_range)):
        raise CheckpointError("--init acts within other action bounds than the teacher; use a checkpoint "
                              "trained on the teacher's env")
    return {name: copy.deepcopy(net) for name, net in init_policy.nets().items()}


def fitted_normalizer(obs: np.ndarray) -> ObsNormalizer:
    """A normaliser fitted to ``obs`` (for a teacher without one; free at deploy time)."""
    norm = ObsNormalizer(obs.shape[1:])
    norm.update(torch.as_tensor(obs, dtype=torch.float64))
    return norm

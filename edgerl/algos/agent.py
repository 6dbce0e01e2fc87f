"""What every agent (SAC, PPO, DQN) offers the loops, the pruning hooks, distillation and sweeps,
and where its tensors live.

``Agent`` is a structural ``Protocol``: the agents do not inherit from it, they match it, and
mypy checks that they do (``_CHECK`` at the bottom). Loops and hooks are typed against it, so a
new consumer can rely on exactly these members and nothing else.
"""

from __future__ import annotations

from typing import Any, Protocol, TypedDict

import numpy as np
import torch
from torch import nn

from edgerl.errors import ConfigError


class PrunableNet(TypedDict):
    """One network as the pruners see it (``Agent.prunable()`` values)."""

    model: nn.Module
    """The network pruned in place (an ``nn.Module`` traced with ``example_inputs``)."""
    example_inputs: tuple[torch.Tensor, ...]
    """Inputs for tracing, on the agent's device."""
    heads: list[nn.Module]
    """Output layers whose outputs must keep their width."""
    twins: list[nn.Module]
    """Same-shaped copies (targets) that lose the same units."""


class Agent(Protocol):
    """The members shared by ``SACAgent``, ``PPOAgent`` and ``DQNAgent``."""

    cfg: Any
    updates: int
    device: torch.device

    def act(self, obs: np.ndarray) -> Any:
        """Training-time action(s) for raw observation(s) (exploring)."""
        ...

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One learning step on a batch already on ``device``; detached metrics, no host sync."""
        ...

    def prunable(self) -> dict[str, PrunableNet]:
        """Networks the pruners may shrink during training."""
        ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer over the prunable networks (surgery slices their state)."""
        ...

    def after_surgery(self) -> None:
        """Refresh whatever is cached over parameters after a pruning step changed shapes."""
        ...

    def deployed_nets(self) -> dict[str, nn.Module]:
        """The modules of the deployed policy, in order."""
        ...

    def state(self) -> dict[str, Any]:
        """Everything to rebuild and continue the agent (tensors may be on ``device``)."""
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` (from CPU tensors) onto ``device``."""
        ...


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N`` as a device.

    Raises:
        ConfigError: an unknown name, or CUDA asked for where it is not available.
    """
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except RuntimeError as e:
        raise ConfigError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N") from e
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise ConfigError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (torch {torch.__version__}); "
                          "use --device cpu or auto")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def to_cpu(tree: Any) -> Any:
    """A copy of a nested dict/list/tuple with every tensor moved to the CPU (checkpoints are
    device-independent: what a CUDA run saves loads, compacts and resumes on a CPU machine)."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu() if tree.device.type != "cpu" else tree
    if isinstance(tree, dict):
        return {k: to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [to_cpu(v) for v in tree]
    if isinstance(tree, tuple):
        return tuple(to_cpu(v) for v in tree)
    return tree


def _check_agents() -> None:
    """Never called: makes mypy verify that each agent satisfies :class:`Agent`."""
    from edgerl.algos.dqn import DQNAgent
    from edgerl.algos.ppo import PPOAgent
    from edgerl.algos.sac import SACAgent

    agents: list[type[Agent]] = [SACAgent, PPOAgent, DQNAgent]
    del agents

"""Gate-based pruning during training (``edgerl train --prune gates``).

:class:`GatePruner` owns the gates of one model (a SAC agent's networks joined into one module,
so that OFENet's features are seen flowing into the actor and critics). After every gradient
update it

1. adds the regulariser's exact gradient ``lambda * dC/dtheta`` (``cost.py``) to the gates that
   received a data gradient in that update (the straight-through estimate, ``gates.py``),
2. takes an Adam step on those gates and projects every theta onto [0, 1],
3. every ``remove_every`` steps (``--prune-every``), removes every unit whose theta is at or
   below ``REMOVE_AT`` physically, through ``PruneGraph.prune`` (optimizer surgery, Polyak
   targets pruned with the same indices), and shrinks the gates, their optimizer state and the
   cost model with it. Removal is batched because each one re-traces the joint graph (about
   1 s for SAC with a full-size OFENet); a unit waiting for it is open in <= 1% of the samples.

:class:`GateHook` is the training-loop hook around it; its state is plain tensors and lists
(gate probabilities, the gates' Adam state, lambda, the width history), so a run resumes with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from edgerl.config import PruneConfig, RunConfig
from edgerl.errors import ConfigError
from edgerl.prune.cost import CostModel, cost_scope, expected_widths
from edgerl.prune.gates import REMOVE_AT, GateSet, closed_units, gate_sites
from edgerl.prune.graph import PruneGraph
from edgerl.prune.schedule import CubicSchedule

STATE_VERSION = 1
GATE_LR = 1e-3
"""Adam learning rate of the gate probabilities (a unit goes from 1 to 0 in >= 1000 updates)."""
TARGET_RATE = 1e-2
"""Per-update log-step of lambda per unit of relative error when a target compression steers it
(lambda changes e-fold in 100 updates while the removed share is off by the whole target)."""
ROUND_AT_END = 0.5
"""At the end of the pruning window a gate is rounded to its most likely value: units with
theta at or below this are removed, the others pass with ``xi = 1`` from then on."""


class GatePruner:
    """Bernoulli gates on every prunable unit of ``model``, a cost-aware regulariser, removal.

    Args:
        model: the network (or several joined in one module).
        example_inputs: inputs for tracing ``model``.
        keep: output heads (never gated or pruned).
        twins: identical copies pruned with the same indices (Polyak targets); mean-gated.
        lam: regulariser weight lambda (on the expected parameter count).
        include: which modules the cost counts (by name in ``model``); None: all.
        optimizers: returns the optimizers of the model's weights (for surgery at removal).
        on_surgery: called after units were removed (e.g. ``agent.after_surgery``).
        lr: Adam learning rate of the gate probabilities.
        init: initial gate probability.
        threshold: removal threshold on theta.
        target: if > 0, the fraction of the dense cost to remove: lambda is steered toward
            the goal ``step`` is given, and while the removed share of the rounded network
            (:meth:`rounded_cost`) is at or above that goal no gate may fall. (The
            straight-through estimate is biased downward at theta > 1/2 for convex losses, see
            ``gates.py``, so even lambda = 0 would let units keep falling; the goal caps how
            many go, the gradients choose which.)
        remove_every: look for units to remove every this many steps.

    Raises:
        ConfigError: bad settings, or groups of the model that gates do not cover.
    """

    def __init__(self, model: nn.Module, example_inputs: Any, keep: Sequence[nn.Module | str] = (),
                 twins: Sequence[nn.Module] = (), lam: float = 1e-4,
                 include: Callable[[str], bool] | None = None,
                 optimizers: Callable[[], Sequence[torch.optim.Optimizer]] = tuple,
                 on_surgery: Callable[[], None] | None = None, lr: float = GATE_LR, init: float = 1.0,
                 threshold: float = REMOVE_AT, target: float = 0.0, remove_every: int = 1) -> None:
        if remove_every < 1:
            raise ConfigError(f"--prune-every must be >= 1 for gates, got {remove_every}")
        if lam < 0 or not math.isfinite(lam):
            raise ConfigError(f"--gate-lambda must be a finite number >= 0, got {lam}")
        if not 0.0 <= target < 1.0:
            raise ConfigError(f"gate target compression must be in [0, 1), got {target}")
        if not 0.0 <= threshold < 1.0:
            raise ConfigError(f"gate removal threshold must be in [0, 1), got {threshold}")
        self.graph = PruneGraph(model, example_inputs, keep=keep, twins=twins)
        sites = gate_sites(model)
        groups = {g.key for g in self.graph.groups()}
        if set(sites) != groups:
            raise ConfigError(
                f"gates cover {sorted(set(sites) - groups)} that are not prunable groups, and miss "
                f"groups {sorted(groups - set(sites))}; every hidden layer must end in a gated activation"
            )
        self.gates = GateSet(model, sites, twins, init)
        self.opt = _adam(self.gates.parameters(), lr)
        self.lam, self.lr, self.threshold, self.target = float(lam), float(lr), float(threshold), float(target)
        self.include = include
        self.remove_every, self.steps = int(remove_every), 0
        self.optimizers, self.on_surgery = optimizers, on_surgery
        self.cost = self._cost_model()
        self.dense_cost = self.cost.expected(self.gates.widths())

    @property
    def active(self) -> bool:
        """Whether gates sample and learn; inactive gates pass every unit (``xi = 1``)."""
        return self.gates.mode == "sample"

    @active.setter
    def active(self, flag: bool) -> None:
        self.gates.mode = "sample" if flag else "deterministic"
        if not flag:
            self.opt.zero_grad(set_to_none=True)

    def _cost_model(self) -> CostModel:
        with self.gates.suspended():
            return CostModel.from_groups(self.graph.model, self.graph.groups(), self.include)

    def expected_cost(self) -> float:
        """C(theta): expected parameters of the counted modules."""
        return self.cost.expected(expected_widths(self.gates.theta))

    def rounded_cost(self) -> float:
        """Parameters of the counted modules once every gate is rounded (``ROUND_AT_END``): the
        cost of the network the window would end with now."""
        return self.cost.expected({k: float((t.detach() > ROUND_AT_END).sum()) for k, t in self.gates.theta.items()})

    def step(self, goal: float | None = None) -> dict[str, list[int]] | None:
        """Regulariser + Adam step + projection + removal, on the gates that have a data gradient.

        Args:
            goal: share of the dense cost that should be removed by now (a schedule's value,
                ramping up to ``target``); None: ``target``. Only used when ``target > 0``.

        Returns:
            None if no gate had a gradient (no update happened), else the removed units
            (group key -> indices before removal; empty if none).
        """
        theta = self.gates.theta
        active = [k for k, t in theta.items() if t.grad is not None]
        if not active:
            return None
        weights = self.cost.unit_weights(expected_widths(theta))
        for k in active:
            theta[k].grad.add_(self.lam * weights.get(k, 0.0))
        ahead = False
        if self.target > 0:
            removed_share = 1.0 - self.rounded_cost() / max(self.dense_cost, 1e-12)
            goal = self.target if goal is None else goal
            ahead = removed_share >= goal
            step = TARGET_RATE * (goal - removed_share) / self.target
            self.lam = min(max(self.lam * math.exp(step), 1e-12), 1e6)
        before = {k: theta[k].detach().clone() for k in active} if ahead else {}
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.gates.project_()
        with torch.no_grad():  # ahead of the schedule: gates may rise but not fall
            for k, old in before.items():
                theta[k].copy_(torch.maximum(theta[k], old))
        self.steps += 1
        return self.remove_closed() if self.steps % self.remove_every == 0 else {}

    def remove_closed(self, keys: Sequence[str] | None = None,
                      threshold: float | None = None) -> dict[str, list[int]]:
        """Physically remove units at or below ``threshold`` (default: the pruner's removal
        threshold); a group keeps at least one unit."""
        threshold = self.threshold if threshold is None else threshold
        removed = {k: idx for k in (keys if keys is not None else list(self.gates.theta))
                   if (idx := closed_units(self.gates.theta[k], threshold))}
        if removed:
            with self.gates.suspended():
                self.graph.prune_many(removed, list(self.optimizers()))
            for k, idx in removed.items():
                gone = set(idx)
                self.gates.shrink(k, [i for i in range(self.gates.theta[k].numel()) if i not in gone], self.opt)
            if self.on_surgery is not None:
                self.on_surgery()
            self.cost = self._cost_model()
        return removed

    def state_dict(self) -> dict[str, Any]:
        """Plain state: gate probabilities, their Adam state, lambda and the dense cost."""
        return {
            "version": STATE_VERSION,
            "theta": {k: t.detach().clone() for k, t in self.gates.theta.items()},
            "optim": self.opt.state_dict(),
            "lam": self.lam, "lr": self.lr, "threshold": self.threshold, "target": self.target,
            "dense_cost": self.dense_cost, "steps": self.steps, "remove_every": self.remove_every,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore gates onto networks already rebuilt at their pruned widths.

        Raises:
            ConfigError: unknown version, or gates that do not match the networks' widths.
        """
        if state.get("version") != STATE_VERSION:
            raise ConfigError(f"unsupported gate state version {state.get('version')!r}")
        saved = {k: int(t.numel()) for k, t in state["theta"].items()}
        if saved != self.gates.widths():
            diff = {k: (saved.get(k), w) for k, w in self.gates.widths().items() if saved.get(k) != w}
            raise ConfigError(f"gate state (saved, network) widths differ: {diff}; rebuild the networks "
                              "from the same checkpoint as the gate state")
        for k, t in state["theta"].items():
            device = self.gates.theta[k].device
            self.gates.theta[k] = nn.Parameter(t.detach().clone().float().to(device))
        self.opt = _adam(self.gates.parameters(), float(state["lr"]))
        self.opt.load_state_dict(state["optim"])
        self.lam, self.lr = float(state["lam"]), float(state["lr"])
        self.threshold, self.target = float(state["threshold"]), float(state["target"])
        self.dense_cost = float(state["dense_cost"])
        self.steps, self.remove_every = int(state["steps"]), int(state["remove_every"])
        self.cost = self._cost_model()


def _adam(params: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr)


class GateHook:
    """``--prune gates`` for SAC (with or without ``--ofenet``): a :class:`GatePruner` over the
    agent's joint networks, on the run's pruning window.

    Before ``--prune-start`` (a fraction of ``--total-steps``) every unit passes: the weights learn
    first, so that gates are not judged on the signs of random initial weights. Between start and
    ``--prune-end`` the gates sample, learn and remove closed units every ``--prune-every`` updates.
    At the end every gate is rounded to its most likely value (units at theta <= ``ROUND_AT_END``
    go, the others switch to ``xi = 1``): the rest of training fine-tunes exactly the network that
    is deployed. Without rounding, a unit sampled in 5% of the updates would be switched fully on
    at deployment, and the deployed cost would be far above the expected cost the regulariser saw.

    With ``target > 0`` the removed share is steered along the cubic schedule of gradual pruning
    (0 at ``--prune-start``, ``target`` at ``--prune-end``): lambda is raised while the removed
    share of the rounded network lags the schedule and lowered while it runs ahead, and no gate may
    fall while it is ahead (``GatePruner.step``). The rounded share, not the expected one, is
    steered because it is what the window ends with: steering the expected share, most gates
    settled between 0.01 and 0.5 and rounding removed 95% of the cost for a 75% target (Hopper).
    A fixed target instead of the ramp makes every unit fall together in the first updates of the
    window, before the data gradients tell useful from useless units apart.

    Reports ``prune_ratio`` (the share of the dense cost no longer expected; the real share once
    the window is over) and keeps the width history.
    """

    name = "gates"

    def __init__(self, agent: Any, prune: PruneConfig, total_steps: int, lr: float = GATE_LR,
                 init: float = 1.0, threshold: float = REMOVE_AT, target: float = 0.0) -> None:
        if not hasattr(agent, "joint_prunable"):
            raise ConfigError(f"--prune gates supports SAC agents, not {type(agent).__name__}")
        if not 0.0 <= prune.prune_start <= prune.prune_end <= 1.0:
            raise ConfigError(f"need 0 <= --prune-start <= --prune-end <= 1, got {prune.prune_start}, {prune.prune_end}")
        entry = agent.joint_prunable()
        self.cost_name = prune.gate_cost
        self.pruner = GatePruner(
            entry["model"], entry["example_inputs"], keep=entry["heads"], twins=entry["twins"],
            lam=prune.gate_lambda, include=cost_scope(prune.gate_cost),
            optimizers=lambda: list(agent.optimizers().values()), on_surgery=agent.after_surgery,
            lr=lr, init=init, threshold=threshold, target=target, remove_every=prune.prune_every,
        )
        self.start = round(prune.prune_start * total_steps)
        self.end = round(prune.prune_end * total_steps)
        self.schedule = CubicSchedule(target, max(total_steps, 1), prune.prune_start, prune.prune_end)
        self.finished = False
        self.pruner.active = self.start == 0 < self.end
        agent.gates = self.pruner.gates
        if prune.gate_actor_grad and getattr(agent, "ofenet", None) is not None:
            agent.actor_gate_reach = "ofenet.state_block."
        self.history: list[list[Any]] = [[0, self.pruner.gates.widths()]]
        """[global step, {group: width}] at the start and after every removal."""
        self.expected: list[list[Any]] = []
        """[global step, {group: expected width = sum of theta}] every ``--prune-every`` gate steps
        inside the window: how the gates move before units reach the removal threshold."""
        self.last: dict[str, float] = {}

    def after_update(self, agent: Any, global_step: int) -> dict[str, float] | None:
        if self.finished:
            return self.last
        if global_step >= self.end:  # the architecture is final: deploy mode from now on
            self._record(global_step, self.pruner.remove_closed(threshold=ROUND_AT_END))
            self.pruner.active, self.finished = False, True
            return self._metrics()
        if global_step < self.start:
            return self.last
        self.pruner.active = True
        removed = self.pruner.step(self.schedule.target_ratio(global_step))
        if removed is None:
            return self.last
        self._record(global_step, removed)
        if self.pruner.steps % self.pruner.remove_every == 0:
            self.expected.append([int(global_step), {k: round(v, 3) for k, v in expected_widths(self.pruner.gates.theta).items()}])
        return self._metrics()

    def _record(self, global_step: int, removed: dict[str, list[int]]) -> None:
        if removed:
            self.history.append([int(global_step), self.pruner.gates.widths()])

    def _metrics(self) -> dict[str, float]:
        if self.finished:  # every remaining unit passes
            cost = self.pruner.cost.expected(self.pruner.gates.widths())
        else:
            cost = self.pruner.expected_cost()
        self.last = {"prune_ratio": 1.0 - cost / max(self.pruner.dense_cost, 1e-12),
                     "gate_params": cost, "gate_lambda": self.pruner.lam}
        return self.last

    def widths(self) -> dict[str, int]:
        """Current units per gated layer (agent-relative names, e.g. ``actor.trunk.0``)."""
        return self.pruner.gates.widths()

    def state_dict(self) -> dict[str, Any]:
        return {"pruner": self.pruner.state_dict(), "history": [[s, dict(w)] for s, w in self.history],
                "expected": [[s, dict(w)] for s, w in self.expected],
                "cost": self.cost_name, "start": self.start, "end": self.end,
                "active": self.pruner.active, "finished": self.finished}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("cost") != self.cost_name:
            raise ConfigError(f"gate state was trained with --gate-cost {state.get('cost')}, not {self.cost_name}")
        self.pruner.load_state_dict(state["pruner"])
        self.history = [[int(s), {k: int(v) for k, v in w.items()}] for s, w in state["history"]]
        self.expected = [[int(s), {k: float(v) for k, v in w.items()}] for s, w in state.get("expected", [])]
        self.start, self.end = int(state["start"]), int(state["end"])
        self.pruner.active, self.finished = bool(state["active"]), bool(state["finished"])
        self._metrics()


def make_gate_hook(agent: Any, run: RunConfig, algo_cfg: Any, prune: PruneConfig) -> GateHook:
    """The ``--prune gates`` hook of a SAC run (``edgerl.prune.hooks.make_hooks`` calls this).

    ``prune.gate_target`` (fraction of the dense cost to remove; 0 = off) steers lambda toward
    that compression.
    """
    if run.algo != "sac":
        raise ConfigError(f"--prune gates supports --algo sac, not {run.algo!r}")
    return GateHook(agent, prune, run.total_steps, target=prune.gate_target)

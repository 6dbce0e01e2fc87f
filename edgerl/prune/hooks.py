"""Training hooks that prune an agent while it learns, built from a ``PruneConfig``.

An agent offers its networks through ``agent.prunable()`` (model, example inputs, output heads,
mirrored twins) and ``agent.optimizers()``; a hook is called after every gradient update, prunes
on its schedule, keeps optimizers and twins in step, and is checkpointed with the run.

Schedules count environment steps (the loop's ``global_step``), so ``--prune-start 0.2
--prune-end 0.8`` mean 20% and 80% of ``--total-steps`` whatever the update ratio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgerl.config import PruneConfig, RunConfig
from edgerl.errors import ConfigError
from edgerl.prune.importance import Importance
from edgerl.prune.schedule import CubicSchedule, LinearSchedule, OneShotSchedule, PruningSchedule

if TYPE_CHECKING:
    from edgerl.algos.agent import Agent
    from edgerl.algos.run import TrainHook


def make_schedule(prune: PruneConfig, total_steps: int, final_ratio: float | None = None) -> PruningSchedule:
    """The schedule named by ``prune.schedule`` over a run of ``total_steps`` env steps."""
    ratio = prune.final_ratio if final_ratio is None else final_ratio
    if prune.schedule == "cubic":
        return CubicSchedule(ratio, total_steps, start=prune.prune_start, end=prune.prune_end, every=prune.prune_every)
    if prune.schedule == "linear":
        return LinearSchedule(ratio, total_steps, start=prune.prune_start, end=prune.prune_end, every=prune.prune_every)
    if prune.schedule == "oneshot":
        return OneShotSchedule(ratio, total_steps, at=prune.prune_start)
    raise ConfigError(f"--schedule {prune.schedule!r}: choose cubic, linear or oneshot")


def prunable_nets(agent: Any, prune: PruneConfig) -> dict[str, dict[str, Any]]:
    """The entries of ``agent.prunable()`` that ``prune.prune_nets`` selects: ``all``, or ``actor``
    (those that are deployed, ``agent.deployed_nets()``; critics and targets are training-only)."""
    nets = agent.prunable()
    if prune.prune_nets == "all":
        return nets
    if prune.prune_nets != "actor":
        raise ConfigError(f"--prune-nets {prune.prune_nets!r}: choose actor or all")
    deployed = {id(m) for m in agent.deployed_nets().values()}
    kept = {name: d for name, d in nets.items() if id(d["model"]) in deployed}
    if not kept:
        raise ConfigError(f"--prune-nets actor: this agent prunes its networks jointly ({', '.join(nets)}: SAC with "
                          "OFENet), so the actor cannot be pruned alone; use --prune-nets all or --prune gates")
    return kept


class GradualPruneHook:
    """Group-structured pruning (L1 group importance by default): channels leave the networks
    physically during training, so training itself gets cheaper as they shrink."""

    name = "gradual"

    def __init__(self, agent: Agent, run: RunConfig, prune: PruneConfig):
        from edgerl.prune.gradual import GradualPruner, PruneTarget

        targets = {
            name: PruneTarget(d["model"], d["example_inputs"], keep=d["heads"], twins=d["twins"])
            for name, d in prunable_nets(agent, prune).items()
        }
        self.pruner = GradualPruner(
            targets,
            optimizers=list(agent.optimizers().values()),
            schedule=make_schedule(prune, run.total_steps),
            importance=Importance.parse(prune.importance),
            round_to=prune.round_to if prune.round_to > 1 else None,
        )
        self.last: dict[str, float] = {}
        self.history: list[list[Any]] = [[0, self.group_widths()]]
        """[step, {"net/group": width}] after every pruning step that removed units (for plots)."""

    def after_update(self, agent: Agent, global_step: int) -> dict[str, float] | None:
        report = self.pruner.step(global_step)
        if report is not None:
            agent.after_surgery()
            self.last = {"prune_ratio": report.ratio}
            if any(report.removed.values()):
                self.history.append([int(global_step), self.group_widths()])
        return self.last

    def group_widths(self) -> dict[str, int]:
        """Current width of every prunable group, keyed ``net/group``."""
        return {f"{n}/{g.key}": g.width for n, graph in self.pruner.graphs.items() for g in graph.groups()}

    def state_dict(self) -> dict[str, Any]:
        return {**self.pruner.state_dict(), "history": [[s, dict(w)] for s, w in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pruner.load_state_dict({k: v for k, v in state.items() if k != "history"})
        self.history = [[int(s), {k: int(v) for k, v in w.items()}] for s, w in state.get("history", [])]
        self.last = {"prune_ratio": self.pruner.applied_ratio}


class MaskPruneHook:
    """Unstructured magnitude pruning with masks (the baseline): same schedule, with the weight
    sparsity set to ``1 - (1 - final_ratio)^2`` so that it keeps about as many parameters as
    group pruning at ``final_ratio`` does. Masked networks keep their dense shapes."""

    name = "unstructured"

    def __init__(self, agent: Agent, run: RunConfig, prune: PruneConfig):
        from edgerl.prune.masking import MagnitudeMasker

        sparsity = 1.0 - (1.0 - prune.final_ratio) ** 2
        self.maskers = {}
        for name, d in prunable_nets(agent, prune).items():
            keep = [n for n, m in d["model"].named_modules() if any(m is h for h in d["heads"])]
            self.maskers[name] = MagnitudeMasker(
                d["model"], make_schedule(prune, run.total_steps, sparsity), scope="global",
                keep=keep, twins=d["twins"])
        self.last: dict[str, float] = {}

    def after_update(self, agent: Agent, global_step: int) -> dict[str, float] | None:
        for masker in self.maskers.values():
            ratio = masker.step(global_step)
            if ratio is None:
                masker.apply()  # re-zero what the optimizer step moved
            else:
                self.last = {"prune_ratio": ratio}
        return self.last

    def state_dict(self) -> dict[str, Any]:
        return {n: m.state_dict() for n, m in self.maskers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for n, m in self.maskers.items():
            m.load_state_dict(state[n])
        self.last = {"prune_ratio": next(iter(self.maskers.values())).applied_ratio}


class NaivePruneHook:
    """Naive per-layer structured pruning (the baseline that ignores coupling, ``naive.py``): each
    layer masks its own weakest filters on the group schedule, to the same widths. Masks are
    re-applied after every optimizer step (an optimizer step post-hook), so no forward pass ever
    sees a masked filter; the networks keep their dense shapes."""

    name = "naive"

    def __init__(self, agent: Agent, run: RunConfig, prune: PruneConfig):
        from edgerl.prune.naive import NaiveFilterMasker

        round_to = prune.round_to if prune.round_to > 1 else None
        self.maskers = {
            name: NaiveFilterMasker(d["model"], make_schedule(prune, run.total_steps), keep=d["heads"],
                                    twins=d["twins"], importance=prune.importance, round_to=round_to)
            for name, d in prunable_nets(agent, prune).items()
        }
        self._handles = [opt.register_step_post_hook(lambda *_: self.apply()) for opt in agent.optimizers().values()]
        self.last: dict[str, float] = {}

    def apply(self) -> None:
        """Zero every masked filter of every network and twin."""
        for masker in self.maskers.values():
            masker.apply()

    def after_update(self, agent: Agent, global_step: int) -> dict[str, float] | None:
        for masker in self.maskers.values():
            ratio = masker.step(global_step)
            if ratio is not None:
                self.last = {"prune_ratio": ratio}
        return self.last

    def widths(self) -> dict[str, dict[str, int]]:
        """Unmasked output channels of every masked layer of every network."""
        return {n: {k: int(v.sum()) for k, v in m.masks.items()} for n, m in self.maskers.items()}

    def state_dict(self) -> dict[str, Any]:
        return {n: m.state_dict() for n, m in self.maskers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for n, m in self.maskers.items():
            m.load_state_dict(state[n])
        self.last = {"prune_ratio": next(iter(self.maskers.values())).applied_ratio}


def make_hooks(agent: Agent, run: RunConfig, algo_cfg: Any, prune: PruneConfig) -> list[TrainHook]:
    """The training hooks ``prune.prune`` asks for (none for ``--prune none``)."""
    if prune.prune == "none":
        return []
    if prune.prune == "gradual":
        return [GradualPruneHook(agent, run, prune)]
    if prune.prune == "unstructured":
        return [MaskPruneHook(agent, run, prune)]
    if prune.prune == "naive":
        return [NaivePruneHook(agent, run, prune)]
    if prune.prune == "gates":
        from edgerl.prune.gate_hook import make_gate_hook

        return [make_gate_hook(agent, run, algo_cfg, prune)]
    raise ConfigError(f"--prune {prune.prune!r}: choose none, gradual, unstructured, naive or gates")

"""Training hooks that prune an agent while it learns, built from a ``PruneConfig``.

An agent offers its networks through ``agent.prunable()`` (model, example inputs, output heads,
mirrored twins) and ``agent.optimizers()``; a hook is called after every gradient update, prunes
on its schedule, keeps optimizers and twins in step, and is checkpointed with the run.

Schedules count environment steps (the loop's ``global_step``), so ``--prune-start 0.2
--prune-end 0.8`` mean 20% and 80% of ``--total-steps`` whatever the update ratio.

A resumed run may rebuild the agent's networks and optimizers after the hooks were made (PPO and
DQN load the checkpoint after ``make_hooks``): the hooks follow the agent's current networks,
re-binding in ``load_state_dict`` and, should they change again, in ``after_update``.
"""

from __future__ import annotations

from typing import Any

from edgerl.config import PruneConfig, RunConfig
from edgerl.errors import ConfigError
from edgerl.prune.importance import Importance
from edgerl.prune.schedule import CubicSchedule, LinearSchedule, OneShotSchedule, PruningSchedule


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


def _members(agent: Any) -> list[Any]:
    """The objects a hook is bound to: every prunable network, its twins and the optimizers."""
    nets = [x for d in agent.prunable().values() for x in (d["model"], *d["twins"])]
    return nets + list(agent.optimizers().values())


def _bound_to(members: list[Any], agent: Any) -> bool:
    now = _members(agent)
    return len(now) == len(members) and all(a is b for a, b in zip(now, members, strict=True))


class GradualPruneHook:
    """Group-structured pruning (L1 group importance by default): channels leave the networks
    physically during training, so training itself gets cheaper as they shrink."""

    name = "gradual"

    def __init__(self, agent: Any, run: RunConfig, prune: PruneConfig):
        self._agent, self._run, self._prune = agent, run, prune
        self.pruner = self._build(agent)
        self.last: dict[str, float] = {}

    def _build(self, agent: Any) -> Any:
        from edgerl.prune.gradual import GradualPruner, PruneTarget

        targets = {
            name: PruneTarget(d["model"], d["example_inputs"], keep=d["heads"], twins=d["twins"])
            for name, d in agent.prunable().items()
        }
        self._bound = _members(agent)
        return GradualPruner(
            targets,
            optimizers=list(agent.optimizers().values()),
            schedule=make_schedule(self._prune, self._run.total_steps),
            importance=Importance.parse(self._prune.importance),
            round_to=self._prune.round_to if self._prune.round_to > 1 else None,
        )

    def _follow(self, agent: Any) -> None:
        """Re-bind to the agent's current networks and optimizers, keeping the progress."""
        if not _bound_to(self._bound, agent):
            state = self.pruner.state_dict()
            self._agent, self.pruner = agent, self._build(agent)
            self.pruner.load_state_dict(state)

    def after_update(self, agent: Any, global_step: int) -> dict[str, float] | None:
        self._follow(agent)
        report = self.pruner.step(global_step)
        if report is not None:
            agent.after_surgery()
            self.last = {"prune_ratio": report.ratio}
        return self.last

    def widths(self) -> dict[str, dict[str, int]]:
        """Current width of every group of every network."""
        return {n: g.widths() for n, g in self.pruner.graphs.items()}

    def state_dict(self) -> dict[str, Any]:
        return self.pruner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not _bound_to(self._bound, self._agent):
            self.pruner = self._build(self._agent)
        self.pruner.load_state_dict(state)
        self.last = {"prune_ratio": self.pruner.applied_ratio}


class MaskPruneHook:
    """Unstructured magnitude pruning with masks (the baseline): same schedule, with the weight
    sparsity set to ``1 - (1 - final_ratio)^2`` so that it keeps about as many parameters as
    group pruning at ``final_ratio`` does. Masked networks keep their dense shapes."""

    name = "unstructured"

    def __init__(self, agent: Any, run: RunConfig, prune: PruneConfig):
        self._agent, self._run, self._prune = agent, run, prune
        self.maskers = self._build(agent)
        self.last: dict[str, float] = {}

    def _build(self, agent: Any) -> dict[str, Any]:
        from edgerl.prune.masking import MagnitudeMasker

        sparsity = 1.0 - (1.0 - self._prune.final_ratio) ** 2
        maskers = {}
        for name, d in agent.prunable().items():
            keep = [n for n, m in d["model"].named_modules() if any(m is h for h in d["heads"])]
            maskers[name] = MagnitudeMasker(
                d["model"], make_schedule(self._prune, self._run.total_steps, sparsity), scope="global",
                keep=keep, twins=d["twins"])
        self._bound = _members(agent)
        return maskers

    def _follow(self, agent: Any) -> None:
        """Re-bind to the agent's current networks, keeping the masks."""
        if not _bound_to(self._bound, agent):
            state = self.state_dict()
            self._agent, self.maskers = agent, self._build(agent)
            self.load_state_dict(state)

    def after_update(self, agent: Any, global_step: int) -> dict[str, float] | None:
        self._follow(agent)
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
        if not _bound_to(self._bound, self._agent):
            self.maskers = self._build(self._agent)
        for n, m in self.maskers.items():
            m.load_state_dict(state[n])
        self.last = {"prune_ratio": next(iter(self.maskers.values())).applied_ratio}


class NaivePruneHook:
    """Naive per-layer structured pruning (the baseline that ignores coupling, ``naive.py``): each
    layer masks its own weakest filters on the group schedule, to the same widths. Masks are
    re-applied after every optimizer step (an optimizer step post-hook), so no forward pass ever
    sees a masked filter; the networks keep their dense shapes."""

    name = "naive"

    def __init__(self, agent: Any, run: RunConfig, prune: PruneConfig):
        self._agent, self._run, self._prune = agent, run, prune
        self._handles: list[Any] = []
        self.maskers = self._build(agent)
        self.last: dict[str, float] = {}

    def _build(self, agent: Any) -> dict[str, Any]:
        from edgerl.prune.naive import NaiveFilterMasker

        maskers = {
            name: NaiveFilterMasker(
                d["model"], make_schedule(self._prune, self._run.total_steps), keep=d["heads"], twins=d["twins"],
                importance=self._prune.importance, round_to=self._prune.round_to if self._prune.round_to > 1 else None)
            for name, d in agent.prunable().items()
        }
        for handle in self._handles:
            handle.remove()
        self._handles = [opt.register_step_post_hook(lambda *_: self.apply()) for opt in agent.optimizers().values()]
        self._bound = _members(agent)
        return maskers

    def apply(self) -> None:
        """Zero every masked filter of every network and twin."""
        for masker in self.maskers.values():
            masker.apply()

    def _follow(self, agent: Any) -> None:
        if not _bound_to(self._bound, agent):
            state = self.state_dict()
            self._agent, self.maskers = agent, self._build(agent)
            self.load_state_dict(state)

    def after_update(self, agent: Any, global_step: int) -> dict[str, float] | None:
        self._follow(agent)
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
        if not _bound_to(self._bound, self._agent):
            self.maskers = self._build(self._agent)
        for n, m in self.maskers.items():
            m.load_state_dict(state[n])
        self.last = {"prune_ratio": next(iter(self.maskers.values())).applied_ratio}


def make_hooks(agent: Any, run: RunConfig, algo_cfg: Any, prune: PruneConfig) -> list[Any]:
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

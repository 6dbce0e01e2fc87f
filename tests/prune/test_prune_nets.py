"""``--prune-nets actor|all``: deploy-aware pruning shrinks only the deployed networks by default."""

from __future__ import annotations

import pytest
import torch

from edgerl.algos.sac import SACAgent, SACConfig
from edgerl.config import PruneConfig, RunConfig
from edgerl.errors import ConfigError
from edgerl.prune.hooks import GradualPruneHook, MaskPruneHook, NaivePruneHook, make_hooks


def _agent(**kw) -> SACAgent:
    torch.manual_seed(0)
    return SACAgent(SACConfig(hidden=[40, 40], **kw), obs_dim=11, act_dim=3)


def _prune(agent: SACAgent, method: str, nets: str):
    prune = PruneConfig(prune=method, final_ratio=0.5, schedule="oneshot", prune_start=0.0, prune_nets=nets)
    (hook,) = make_hooks(agent, RunConfig(total_steps=10), agent.cfg, prune)
    hook.after_update(agent, 5)
    return hook


def _live_units(linear: torch.nn.Linear) -> int:
    return int((linear.weight.abs().sum(1) > 0).sum())


def test_default_prunes_only_the_deployed_actor():
    assert PruneConfig().prune_nets == "actor"
    agent = _agent()
    hook = _prune(agent, "gradual", PruneConfig().prune_nets)
    assert isinstance(hook, GradualPruneHook) and set(hook.pruner.graphs) == {"actor"}
    assert agent.actor.spec()["hidden"] == [20, 20]
    assert agent.qf1.spec()["hidden"] == agent.qf1_target.spec()["hidden"] == [40, 40]
    assert agent.qf2.spec()["hidden"] == [40, 40]


def test_all_prunes_critics_and_their_targets():
    agent = _agent()
    _prune(agent, "gradual", "all")
    assert agent.actor.spec()["hidden"] == [20, 20]
    assert agent.qf1.spec()["hidden"] == agent.qf1_target.spec()["hidden"] == [20, 20]


@pytest.mark.parametrize("method,cls", [("unstructured", MaskPruneHook), ("naive", NaivePruneHook)])
def test_masked_methods_follow_prune_nets(method, cls):
    agent = _agent()
    hook = _prune(agent, method, "actor")
    assert isinstance(hook, cls) and set(hook.maskers) == {"actor"}
    agent_all = _agent()
    hook_all = _prune(agent_all, method, "all")
    assert set(hook_all.maskers) == {"actor", "qf1", "qf2"}
    if method == "naive":  # filters masked in the actor only
        assert _live_units(agent.actor.trunk[0]) == 20 and _live_units(agent.qf1.obs_in) == 40
        assert _live_units(agent_all.qf1.obs_in) == 20


def test_bad_choice_and_coupled_ofenet_are_one_line_errors():
    with pytest.raises(ConfigError, match="choose actor or all"):
        _prune(_agent(), "gradual", "critics")
    agent = _agent(ofenet=True, ofenet_layers=2, ofenet_units=8)
    with pytest.raises(ConfigError, match="--prune-nets all or --prune gates"):
        _prune(agent, "gradual", "actor")

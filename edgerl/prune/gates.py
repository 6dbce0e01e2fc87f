"""Bernoulli unit gates: ``h = xi * act(BN(W x + b))`` with ``xi ~ Bernoulli(theta)`` per unit.

Gates live outside the networks, as forward hooks on the activation that ends each gated layer,
so the networks keep their registered classes, specs and state dicts, and a network whose hooks
are removed is exactly the deployed network (surviving units pass with ``xi = 1``).

Modes of a :class:`GateSet`:

- ``sample`` (training): a fresh ``xi`` per sample and unit. The gate probability ``theta``
  receives a gradient only where the gated layer's own weights do (so SAC's actor loss, which
  runs the critics frozen, does not train the critics' gates), or inside
  :meth:`GateSet.reaching` for the sites it names: SAC's actor loss reaches the gates of OFENet's
  frozen state block that way (``--gate-actor-grad``), since the deploy cost charges those units
  for the actor's fan-in while OFENet's own loss does not see the actor. Twins (Polyak targets) are gated by the mean, ``xi = theta`` (no sampling,
  no gradient): a lower-variance TD target, continuous as a unit fades out.
- ``deterministic`` (evaluation, export): ``xi = 1`` for every unit still present.

Estimator of d E[L] / d theta: straight-through at the sampled gate,

    g_i = dL/dxi_i evaluated at the sampled xi   (forward value xi, backward as if xi = theta)

Why: it comes out of the backward pass the weights need anyway (zero extra forward passes),
while the unbiased alternative E[L | xi_i = 1] - E[L | xi_i = 0] needs a forward pass per unit
(hundreds per update for OFENet, actor and critics), and ARM needs two extra forward passes per
update and a logit parametrisation that never reaches theta = 0, which our projection onto
[0, 1] and physical removal rely on. The regulariser's gradient is exact (C(theta) is a
polynomial, see ``cost.py``); only the data term is estimated. Bias: if L is linear in xi_i the
estimate is exact in expectation; if L is quadratic in xi_i (a unit feeding a linear head under
MSE) E[g_i] - (L(1) - L(0)) = (theta_i - 1/2) * d2L/dxi_i^2 (tested by enumeration in
``tests/prune/test_gates.py``). For a useful unit at theta ~ 1 the estimate is ~0 (the weights
are stationary), so the regulariser lowers theta until the samples with xi_i = 0 push back:
useful units settle at 1 - O(lambda); units with no effect on the loss only feel the
regulariser and reach 0. A minibatch sees ``DRAWS`` independent gate patterns (sample b uses
pattern b mod 32), not one: the estimate is averaged over them, at 1/8 of the random numbers
per-sample gates would cost at batch 256 (the RNG was 15% of a gated SAC update).

Removal: a unit whose theta falls to ``REMOVE_AT`` or below after the projected step is removed
physically (``GatePruner`` in ``gate_hook.py``). At that point it is present in at most 1% of
the training samples, and keeping it would switch it fully on at deployment.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from edgerl.errors import ConfigError

REMOVE_AT = 0.01
"""A unit whose gate probability is at or below this is removed physically."""

MODES = ("sample", "deterministic")
DRAWS = 32
"""Independent gate patterns per minibatch (per sample when the batch is smaller)."""


def _trunk_sites(trunk: nn.Sequential, prefix: str = "trunk") -> dict[str, str]:
    mods = list(trunk)
    return {f"{prefix}.{i}": f"{prefix}.{i + 1}" for i, m in enumerate(mods)
            if isinstance(m, nn.Linear) and i + 1 < len(mods)}


def gate_sites(net: nn.Module) -> dict[str, str]:
    """Gated layers of ``net``: group key (the Linear whose outputs are the units) -> name of the
    module whose output the gate multiplies (the activation ending that layer).

    Registered nets answer by type; a net with a ``gate_sites()`` method answers itself; any other
    module is the union of its children's sites (names prefixed), e.g. SAC's joint module.

    Raises:
        ConfigError: a registered net type gates do not know.
    """
    if hasattr(net, "gate_sites"):
        return dict(net.gate_sites())
    kind = getattr(net, "net_type", None)
    if kind in ("sac_actor", "q_features"):
        return _trunk_sites(net.trunk)
    if kind == "q_mlp":
        return {"obs_in": "trunk.0", **_trunk_sites(net.trunk)}
    if kind is not None:
        raise ConfigError(f"gates do not support {kind!r} networks (supported: MLP actor/critics and OFENet)")
    sites: dict[str, str] = {}
    for name, child in net.named_children():
        sites.update({f"{name}.{k}": f"{name}.{v}" for k, v in gate_sites(child).items()})
    return sites


def sample_gates(theta: torch.Tensor, like: torch.Tensor, grad: bool) -> torch.Tensor:
    """``xi ~ Bernoulli(theta)`` shaped like ``like``; straight-through to ``theta`` if ``grad``."""
    p = theta.detach()
    xi = (torch.rand_like(like) < p).to(like.dtype)
    return xi + (theta - p) if grad else xi


def apply_gates(out: torch.Tensor, theta: torch.Tensor, grad: bool, draws: int = DRAWS) -> torch.Tensor:
    """``out * xi`` for a ``[batch, units]`` activation, with ``draws`` independent gate patterns
    shared round-robin by the samples (one per sample if the batch is not a multiple of it)."""
    batch = out.shape[0]
    if out.dim() != 2 or batch <= draws or batch % draws:
        return out * sample_gates(theta, out, grad)
    xi = sample_gates(theta, out[:draws], grad)
    return (out.view(-1, draws, out.shape[1]) * xi).view(out.shape)


class GateSet:
    """Gate probabilities of the units of one model (and mean gates on its twins).

    Args:
        model: the network; ``sites`` are names inside it.
        sites: group key -> gated module name (see :func:`gate_sites`).
        twins: identical copies (Polyak targets) gated by ``theta`` without sampling.
        init: initial gate probability.
    """

    def __init__(self, model: nn.Module, sites: Mapping[str, str], twins: Sequence[nn.Module] = (),
                 init: float = 1.0) -> None:
        if not 0.0 < init <= 1.0:
            raise ConfigError(f"initial gate probability must be in (0, 1], got {init}")
        self.sites = dict(sorted(sites.items()))
        self.mode = "sample"
        self._suspended = False
        self._reach: str | None = None
        self.theta: dict[str, nn.Parameter] = {}
        self._handles: list[Any] = []
        for key, act in self.sites.items():
            layer = model.get_submodule(key)
            if not isinstance(layer, nn.Linear):
                raise ConfigError(f"gate site {key!r} must be a Linear layer, not {type(layer).__name__}")
            self.theta[key] = nn.Parameter(torch.full((layer.out_features,), float(init), device=layer.weight.device))
            self._handles.append(model.get_submodule(act).register_forward_hook(self._hook(key, layer)))
            for twin in twins:
                self._handles.append(twin.get_submodule(act).register_forward_hook(self._hook(key, None)))

    def _hook(self, key: str, layer: nn.Linear | None):
        def gate(module: nn.Module, inputs: Any, out: torch.Tensor) -> torch.Tensor | None:
            if self._suspended or self.mode == "deterministic":
                return None
            theta = self.theta[key]
            if layer is None:  # twin: mean gate
                return out * theta.detach()
            grad = torch.is_grad_enabled() and (
                layer.weight.requires_grad or (self._reach is not None and key.startswith(self._reach)))
            return apply_gates(out, theta, grad)

        return gate

    def parameters(self) -> list[nn.Parameter]:
        """Gate probabilities, in site order (the order of an optimizer over them)."""
        return list(self.theta.values())

    def widths(self) -> dict[str, int]:
        """Units per gated group."""
        return {k: int(t.numel()) for k, t in self.theta.items()}

    @contextlib.contextmanager
    def deterministic(self) -> Iterator[None]:
        """Every present unit passes (``xi = 1``): evaluation and export."""
        before, self.mode = self.mode, "deterministic"
        try:
            yield
        finally:
            self.mode = before

    @contextlib.contextmanager
    def reaching(self, prefix: str) -> Iterator[None]:
        """Gates whose key starts with ``prefix`` get the straight-through gradient of whatever
        loss runs inside, even where their layer's weights are frozen (which stay untouched)."""
        before, self._reach = self._reach, prefix
        try:
            yield
        finally:
            self._reach = before

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """Hooks do nothing (tracing a pruning graph must see the plain network)."""
        before, self._suspended = self._suspended, True
        try:
            yield
        finally:
            self._suspended = before

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp every theta onto [0, 1]."""
        for t in self.theta.values():
            t.clamp_(0.0, 1.0)

    def shrink(self, key: str, keep: Sequence[int], optimizer: torch.optim.Optimizer | None = None) -> None:
        """Keep only units ``keep`` of group ``key`` (after they were removed from the network),
        slicing the optimizer's per-element state the same way."""
        old = self.theta[key]
        idx = torch.as_tensor(list(keep), dtype=torch.long, device=old.device)
        new = nn.Parameter(old.detach()[idx].clone())
        self.theta[key] = new
        if optimizer is not None:
            _replace_param(optimizer, old, new, idx)

    def remove_hooks(self) -> None:
        """Detach every hook: the networks are plain again."""
        for h in self._handles:
            h.remove()
        self._handles.clear()


def _replace_param(opt: torch.optim.Optimizer, old: nn.Parameter, new: nn.Parameter, idx: torch.Tensor) -> None:
    for group in opt.param_groups:
        for i, p in enumerate(group["params"]):
            if p is old:
                group["params"][i] = new
    state = opt.state.pop(old, None)
    if state is not None:
        opt.state[new] = {k: v[idx.to(v.device)].clone() if torch.is_tensor(v) and v.shape == old.shape else v
                          for k, v in state.items()}


def closed_units(theta: torch.Tensor, threshold: float = REMOVE_AT) -> list[int]:
    """Units at or below ``threshold``, never all of them (the most open one stays)."""
    idx = torch.nonzero(theta.detach() <= threshold).flatten().tolist()
    if len(idx) >= theta.numel():
        best = int(torch.argmax(theta.detach()))
        idx = [i for i in idx if i != best]
    return idx


# --------------------------------------------------------------------------------- deployment
def checkpoint_gates(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor] | None:
    """Gate probabilities a ``--prune gates`` train checkpoint holds (None if it has none), by
    agent-relative group key: the ``theta`` argument of :func:`fold_gates`."""
    state = (ckpt.get("hooks") or {}).get("gates")
    return None if state is None else dict(state["pruner"]["theta"])


def fold_gates(deployed: Mapping[str, nn.Module], theta: Mapping[str, torch.Tensor],
               threshold: float = REMOVE_AT) -> dict[str, nn.Module]:
    """Plain deployed networks from gated ones: units whose gate probability is at or below
    ``threshold`` are removed physically, every other unit passes with ``xi = 1``.

    The result holds fresh modules (rebuilt from their specs, no hooks, no gate parameters);
    the inputs are left untouched. Pass ``threshold=0.5`` to also drop units that were open in
    fewer than half of the training samples.

    Args:
        deployed: ``agent.deployed_nets()``: the normaliser, ``ofenet_state`` (optional) and
            ``actor``.
        theta: gate probabilities by agent-relative group key (``GateHook.state_dict()["theta"]``,
            e.g. ``"actor.trunk.0"``, ``"ofenet.state_block.layers.0.fc"``); groups without an
            entry keep all units.
        threshold: removal threshold.

    Raises:
        ConfigError: gate probabilities whose sizes differ from the networks' widths.
    """
    from edgerl.nets import build_net, net_spec
    from edgerl.prune.graph import PruneGraph

    plain: dict[str, nn.Module] = {}
    for name, module in deployed.items():
        if hasattr(module, "net_type"):
            fresh = build_net(net_spec(module))
        else:  # the observation normaliser
            fresh = type(module)(module.shape, clip=module.clip, eps=module.eps, enabled=module.enabled)
        fresh.load_state_dict(module.state_dict())
        plain[name] = fresh.train(module.training)

    chain = _DeployChain(plain.get("ofenet_state"), plain["actor"])
    graph = PruneGraph(chain, torch.zeros(2, chain.in_dim), keep=chain.actor.heads())
    plan: dict[str, list[int]] = {}
    for group in graph.groups():
        t = theta.get(group.key)
        if t is None:
            continue
        if t.numel() != group.width:
            raise ConfigError(f"gate state for {group.key!r} has {t.numel()} units but the network has "
                              f"{group.width}; use the gate state saved with these networks")
        plan[group.key] = closed_units(t, threshold)
    graph.prune_many(plan)
    sync_input_dim(plain["actor"])
    return plain


def sync_input_dim(net: nn.Module) -> None:
    """Set a net's recorded ``obs_dim`` to its first Linear's input width (it shrinks when
    OFENet units feeding it are removed), so that its spec rebuilds it."""
    if hasattr(net, "obs_dim"):
        net.obs_dim = next(m for m in net.modules() if isinstance(m, nn.Linear)).in_features


class _DeployChain(nn.Module):
    """State block -> actor, named like the agent (``ofenet.state_block.*``, ``actor.*``)."""

    def __init__(self, state_block: nn.Module | None, actor: nn.Module) -> None:
        super().__init__()
        if state_block is not None:
            self.ofenet = nn.Module()
            self.ofenet.state_block = state_block
        self.actor = actor
        self.in_dim = state_block.obs_dim if state_block is not None else actor.obs_dim

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.ofenet.state_block(obs) if hasattr(self, "ofenet") else obs
        return self.actor(x)

"""Coupled channel groups of a network and their physical removal (torch-pruning lives here only).

A *group* is a set of channels that must be removed together: a layer's output channels, the
BatchNorm after it, and every input slice that reads them (through activations, residual
additions, concatenations, flattening). Each group is named by its *key*: the qualified name of
the first Linear/Conv (in `named_modules()` order) whose outputs it removes. Indices passed to
`PruneGraph.prune` are output-channel indices of that layer.

Layers named in `keep` (policy/value/Q heads) keep their output width; their inputs still shrink.
Groups that would change a model output, or prune a free `nn.Parameter` (e.g. an `InputScale`),
are left out as well.

Upstream pitfalls handled here (torch-pruning 1.6.1):
- Building a graph runs a forward in eval mode: every module's train/eval flag is restored after.
- Frozen networks (targets with `requires_grad=False`) are invisible to the autograd tracer:
  parameters are made trainable during the trace and restored after.
- A tensor no parameterised module produced, fed into `torch.cat` with hidden features, is
  mis-mapped (issue #481): the concat offsets miss it, groups merge and the wrong input columns
  go. With `strict=True` (default) any group crossing such a concat raises `PruneGraphError`;
  the fix is `edgerl.prune.InputScale` (or LayerNorm/BatchNorm1d) on each raw input.
- Pruning replaces Parameter objects: pass `optimizers` to `prune` (see `surgery.py`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from edgerl.errors import EdgerlError
from edgerl.prune import InputScale, layer_widths
from edgerl.prune.importance import Importance, ImportanceLike, lowest_indices
from edgerl.prune.surgery import track_removal

ROOT_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd)
"""Layers whose output channels define a group."""

_OPT = tp.ops.OPTYPE
_INPUT_FIX = (
    "pass every raw input (observation, action, buffer-normalised tensor) through a module with "
    "parameters - edgerl.prune.InputScale, nn.LayerNorm or nn.BatchNorm1d - before torch.cat"
)


class PruneGraphError(EdgerlError, ValueError):
    """A network cannot be pruned as asked (unknown layer, unsafe concat, over-pruning, ...)."""


@dataclass(frozen=True)
class GroupInfo:
    """A prunable group, in plain names (no torch-pruning objects)."""

    key: str
    """Qualified name of the group's root Linear/Conv; indices are its output channels."""
    width: int
    """Current number of channels."""
    out_layers: tuple[str, ...]
    """Modules whose output channels (rows, BN/LN entries) shrink with the group."""
    in_layers: tuple[str, ...]
    """Modules whose input channels (columns) shrink with the group."""


@dataclass
class _Entry:
    info: GroupInfo
    group: Any  # tp Group with all channel indices, rooted at `info.key`


def _forward(model: nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


@contextlib.contextmanager
def _tracing_state(model: nn.Module):
    """Grad on, every parameter trainable; train/eval flags and requires_grad restored after."""
    modes = [(m, m.training) for m in model.modules()]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    try:
        for p in frozen:
            p.requires_grad_(True)
        with torch.enable_grad():
            yield
    finally:
        for p in frozen:
            p.requires_grad_(False)
        for m, training in modes:
            m.training = training


def _build(model: nn.Module, inputs: Any, forward_fn: Callable[[nn.Module, Any], Any]) -> Any:
    """Trace `model`; the graph gets `output_nodes`: nodes whose result is a model output."""
    outs: list[Any] = []

    def run(m: nn.Module, x: Any) -> Any:
        outs.append(forward_fn(m, x))
        return outs[-1]

    # torch-pruning sizes a free parameter by its last dimension longer than 1, so a 1-feature
    # InputScale (a 1-D action) would be left unsized and break the concat it feeds: name its dim.
    scales = [(p, 0) for m in model.modules() if isinstance(m, InputScale) for p in (m.weight, m.bias)]
    with _tracing_state(model):
        dg = tp.DependencyGraph().build_dependency(
            model, example_inputs=inputs, forward_fn=run, verbose=False, unwrapped_parameters=scales or None
        )
    fns = {t.grad_fn for t in tp.utils.flatten_as_list(outs) if torch.is_tensor(t)}
    dg.output_nodes = {n for n in dg.module2node.values() if n.grad_fn in fns or not n.outputs}
    return dg


def _is_feature_cat(node: Any) -> bool:
    dim = getattr(node.grad_fn, "_saved_dim", 1)
    if dim >= 2**63:  # negative dims come back as unsigned 64-bit
        dim -= 2**64
    return dim == 1 or dim < 0


def _untraced_concats(dg: Any) -> set[Any]:
    """Concat nodes (on the feature dim) whose inputs torch-pruning cannot size (issue #481)."""
    unwrapped = [p for p, _ in dg.unwrapped_parameters]
    bad = set()
    for node in dg.module2node.values():
        if node.type != _OPT.CONCAT or not _is_feature_cat(node):
            continue
        for fn, _ in node.grad_fn.next_functions:
            leaf = fn is not None and "accumulategrad" in fn.name().lower()
            if fn is None or (leaf and not any(fn.variable is p for p in unwrapped)):
                bad.add(node)
        if node.module.offsets is None:
            bad.add(node)
    return bad


class PruneGraph:
    """Prunable channel groups of `model`, mirrored onto identical `twins` (e.g. Polyak targets).

    The torch-pruning graph is rebuilt lazily after every removal, so groups, widths and
    importances always reflect the current shapes (about 5 ms for a 1024-1024 MLP).

    Args:
        model: network to prune.
        example_inputs: a tensor, a tuple (positional) or a dict (keyword) of example inputs.
        keep: names (or modules) of layers whose output width never changes (output heads).
        twins: networks of identical architecture and widths, pruned with the same indices.
        strict: raise on groups crossing a concat torch-pruning cannot map (issue #481).
        forward_fn: how to call the model on `example_inputs` (default: by their type).

    Raises:
        PruneGraphError: unknown `keep` name, twin mismatch, or (strict) an unsafe concat.
    """

    def __init__(
        self,
        model: nn.Module,
        example_inputs: Any,
        keep: Iterable[str | nn.Module] = (),
        twins: Sequence[nn.Module] = (),
        strict: bool = True,
        forward_fn: Callable[[nn.Module, Any], Any] | None = None,
    ) -> None:
        self.model = model
        self.twins = list(twins)
        self.example_inputs = example_inputs
        self.strict = strict
        self._forward_fn = forward_fn or _forward
        self._order = {name: i for i, (name, _) in enumerate(model.named_modules())}
        self.keep = self._resolve_keep(keep)
        for i, twin in enumerate(self.twins):
            self._check_twin(i, twin)
        self.skipped: dict[str, str] = {}
        """Groups left out on purpose (key -> reason), besides those of `keep` layers."""
        self.build_seconds = 0.0
        """Wall time of the last graph build of `model`."""
        self._dg: Any = None
        self._twin_dgs: list[Any] = [None] * len(self.twins)
        self._entries: dict[str, _Entry] = {}
        self.rebuild()

    # ------------------------------------------------------------------ construction
    def _resolve_keep(self, keep: Iterable[str | nn.Module]) -> tuple[str, ...]:
        name_of = {m: n for n, m in self.model.named_modules()}
        names = []
        for k in keep:
            name = name_of.get(k) if isinstance(k, nn.Module) else k
            if name is None or name not in self._order:
                raise PruneGraphError(
                    f"keep layer {k!r} is not a submodule of {type(self.model).__name__}; "
                    f"layer names: {[n for n in self._order if n][:20]}"
                )
            names.append(name)
        return tuple(sorted(set(names)))

    def _check_twin(self, i: int, twin: nn.Module) -> None:
        mine = {n: tuple(p.shape) for n, p in self.model.named_parameters()}
        theirs = {n: tuple(p.shape) for n, p in twin.named_parameters()}
        if mine != theirs:
            diff = sorted(set(mine.items()) ^ set(theirs.items()))[:6]
            raise PruneGraphError(
                f"twin {i} ({type(twin).__name__}) differs from the model in parameter names or "
                f"shapes, e.g. {diff}; a twin must be an identical copy (copy.deepcopy)"
            )

    def rebuild(self) -> None:
        """Re-trace the model and re-enumerate its groups (twins are re-traced when pruned)."""
        start = time.perf_counter()
        self._dg = _build(self.model, self.example_inputs, self._forward_fn)
        self._entries = self._enumerate(self._dg)
        self._twin_dgs = [None] * len(self.twins)
        self.build_seconds = time.perf_counter() - start

    def _enumerate(self, dg: Any) -> dict[str, _Entry]:
        modules = dict(self.model.named_modules())
        name_of = {m: n for n, m in modules.items()}
        ignored = [sub for k in self.keep for sub in modules[k].modules()]
        untraced = _untraced_concats(dg)
        self.skipped = {}
        entries: list[_Entry] = []
        for group in dg.get_all_groups(ignored_layers=ignored, root_module_types=ROOT_TYPES):
            outs: list[str] = []
            ins: list[str] = []
            reason = None
            unsafe = False
            for dep, _ in group:
                node = dep.target
                out_pruned = dg.is_out_channel_pruning_fn(dep.handler)
                if node.type == _OPT.OUTPUT or (out_pruned and node in dg.output_nodes):
                    reason = "its channels are a model output"
                elif node.type == _OPT.PARAMETER:
                    reason = f"it reaches the free parameter {dg._param_to_name.get(node.module)}"
                unsafe |= node in untraced or dep.source in untraced
                name = name_of.get(node.module)
                if name is None:
                    continue
                bucket = outs if out_pruned else ins
                if name not in bucket:
                    bucket.append(name)
            roots = sorted(
                (n for n in outs if isinstance(modules[n], ROOT_TYPES)), key=self._order.get
            )
            if not roots:
                continue
            key = roots[0]
            if unsafe and self.strict:
                raise PruneGraphError(
                    f"group {key!r} of {type(self.model).__name__} crosses a torch.cat with an input "
                    f"torch-pruning cannot trace (torch-pruning issue #481: wrong channels would be "
                    f"removed); {_INPUT_FIX}"
                )
            if reason is not None:
                self.skipped[key] = reason
                continue
            root = modules[key]
            fn = dg.get_pruner_of_module(root).prune_out_channels
            width = dg.get_out_channels(root)
            full = dg.get_pruning_group(root, fn, list(range(width)))
            info = GroupInfo(
                key,
                width,
                tuple(sorted(outs, key=self._order.get)),
                tuple(sorted(ins, key=self._order.get)),
            )
            entries.append(_Entry(info, full))
        entries.sort(key=lambda e: self._order[e.info.key])
        return {e.info.key: e for e in entries}

    # ------------------------------------------------------------------ queries
    def _current(self) -> dict[str, _Entry]:
        if self._dg is None:
            self.rebuild()
        return self._entries

    def _entry(self, key: str) -> _Entry:
        entries = self._current()
        if key not in entries:
            why = self.skipped.get(key) or ("it is kept" if key in self.keep else "no such group")
            raise PruneGraphError(
                f"{key!r} is not a prunable group ({why}); groups: {list(entries)}"
            )
        return entries[key]

    def groups(self) -> list[GroupInfo]:
        """Prunable groups, ordered by their key's position in `named_modules()`."""
        return [e.info for e in self._current().values()]

    def group(self, key: str) -> GroupInfo:
        """One group by key."""
        return self._entry(key).info

    def widths(self) -> dict[str, int]:
        """Current output width of every Linear/Conv of the model (see `layer_widths`)."""
        return layer_widths(self.model)

    def importance(self, key: str, method: ImportanceLike = Importance.L1) -> torch.Tensor:
        """One score per channel of group `key` (higher = more important), on the CPU.

        Raises:
            PruneGraphError: Taylor importance without gradients on the group's layers.
        """
        entry = self._entry(key)
        scorer = _scorer(method)
        if not callable(method) and Importance.parse(method).needs_gradients:
            modules = dict(self.model.named_modules())
            missing = [
                n
                for n in entry.info.out_layers + entry.info.in_layers
                if isinstance(modules[n], ROOT_TYPES) and modules[n].weight.grad is None
            ]
            if missing:
                raise PruneGraphError(
                    f"Taylor importance of group {key!r} needs gradients, but {missing} have none; "
                    "call loss.backward() (and do not zero_grad) before pruning"
                )
        with torch.no_grad():
            scores = scorer(entry.group)
        if scores is None or scores.numel() != entry.info.width:
            raise PruneGraphError(f"importance of group {key!r} could not be computed")
        return scores.detach().float().cpu()

    def lowest(self, key: str, n: int, method: ImportanceLike = Importance.L1) -> list[int]:
        """The `n` least important channels of group `key` (sorted indices)."""
        return lowest_indices(self.importance(key, method), n)

    # ------------------------------------------------------------------ removal
    def prune(
        self,
        key: str,
        idxs: Iterable[int],
        optimizers: Sequence[torch.optim.Optimizer] = (),
    ) -> None:
        """Physically remove channels `idxs` of group `key` from the model and every twin.

        Args:
            key: group key (`GroupInfo.key`).
            idxs: output-channel indices of the key layer; at least one channel must remain.
            optimizers: optimizers of the model (or twins) to carry over (`track_removal`).

        Raises:
            PruneGraphError: unknown group, index out of range, no channel left, or twins whose
                widths no longer match the model.
        """
        self.prune_many({key: idxs}, optimizers)

    def prune_many(
        self,
        plan: Mapping[str, Iterable[int]],
        optimizers: Sequence[torch.optim.Optimizer] = (),
    ) -> None:
        """Remove channels of several groups (key -> indices, each as in :meth:`prune`) with one
        trace of the model and of each twin.

        Same result as calling :meth:`prune` per key in turn, without re-tracing in between:
        groups never share output channels, so one group's removal leaves the others' indices
        valid, and torch-pruning re-derives its concat/flatten index mappings from the current
        shapes every time it builds a group (``update_index_mapping``). All indices refer to the
        widths before the call. Tested against sequential pruning on DenseNet concats and
        residual streams.
        """
        todo: dict[str, list[int]] = {}
        for key, idxs in plan.items():
            info = self._entry(key).info
            idxs = sorted({int(i) for i in idxs})
            if not idxs:
                continue
            if idxs[0] < 0 or idxs[-1] >= info.width:
                raise PruneGraphError(f"group {key!r} has {info.width} channels; got indices {idxs}")
            if len(idxs) >= info.width:
                raise PruneGraphError(
                    f"removing {len(idxs)} of {info.width} channels of group {key!r} would leave none"
                )
            todo[key] = idxs
        if not todo:
            return
        for i, twin in enumerate(self.twins):
            if self._twin_dgs[i] is None:
                self._twin_dgs[i] = _build(twin, self.example_inputs, self._forward_fn)
        models = [self.model, *self.twins]
        graphs = [self._dg, *self._twin_dgs]
        tracking = track_removal(models, optimizers) if optimizers else contextlib.nullcontext()
        try:
            with tracking, torch.no_grad():
                for key, idxs in todo.items():
                    # Plan every copy before pruning any: a failed check leaves this group intact.
                    for group in [self._plan(m, dg, key, idxs) for m, dg in zip(models, graphs, strict=True)]:
                        group.prune()
        finally:
            self._dg = None  # lazy rebuild: the graph must reflect the new shapes
            self._twin_dgs = [None] * len(self.twins)
        mine = layer_widths(self.model)
        for i, twin in enumerate(self.twins):
            if layer_widths(twin) != mine:
                raise PruneGraphError(
                    f"twin {i} widths diverged from the model after pruning {sorted(todo)}"
                )

    def _plan(self, model: nn.Module, dg: Any, key: str, idxs: list[int]) -> Any:
        module = model.get_submodule(key)
        group = dg.get_pruning_group(
            module, dg.get_pruner_of_module(module).prune_out_channels, idxs
        )
        if not dg.check_pruning_group(group):
            raise PruneGraphError(f"pruning {len(idxs)} channels of {key!r} would empty a layer")
        return group

    def shrink_to(
        self,
        key: str,
        width: int,
        method: ImportanceLike = Importance.L1,
        optimizers: Sequence[torch.optim.Optimizer] = (),
    ) -> list[int]:
        """Remove the least important channels of group `key` until it has `width` channels.

        Returns:
            The removed indices (empty if the group is already at most `width` wide).
        """
        if width < 1:
            raise PruneGraphError(
                f"group {key!r} must keep at least one channel, asked for {width}"
            )
        current = self.group(key).width
        if current <= width:
            return []
        idxs = self.lowest(key, current - width, method)
        self.prune(key, idxs, optimizers)
        return idxs


def _scorer(method: ImportanceLike) -> Callable[[Any], torch.Tensor | None]:
    """Map an importance name onto torch-pruning's group importance (raw, unnormalised)."""
    if callable(method) and not isinstance(method, (str, Importance)):
        return method
    kind = Importance.parse(method)
    if kind is Importance.TAYLOR:
        return tp.importance.GroupTaylorImportance(group_reduction="mean", normalizer=None)
    p = 1 if kind is Importance.L1 else 2
    return tp.importance.GroupMagnitudeImportance(p=p, group_reduction="mean", normalizer=None)

"""What every reader of another library's policy file produces, and the pieces they share.

A reader turns a foreign file into an :class:`ImportedPolicy` (an edgerl ``mlp`` net, an
optional :class:`~edgerl.nets.mlp.ObsNormalizer` and the action post-processing as data);
:func:`imported_payload` turns that into the ``kind: "policy"`` checkpoint every later command
reads. Nothing here unpickles: tensors come from ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgerl.errors import CheckpointError, ConfigError
from edgerl.nets.mlp import ACTIVATIONS, MLP, ObsNormalizer


class ImportLayoutError(CheckpointError):
    """A foreign policy file does not have a layout edgerl knows, or its parts disagree."""


@dataclass
class ImportedPolicy:
    """A policy read from another library, before it becomes a policy checkpoint."""

    net: nn.Module
    """The network, observation (normalised) -> action scores or pre-squash action: an edgerl
    ``mlp`` (vector observations) or ``q_cnn`` (uint8 images, SB3 CnnPolicy)."""
    discrete: bool
    """Argmax over the net's output (True) or the continuous action chain (False)."""
    library: str
    """``sb3``, ``rsl_rl``, ``cleanrl``, ``skrl``."""
    algo: str
    """The source algorithm or layout (``ppo``, ``sac``, ``v4``, ...), for provenance."""
    normalizer: ObsNormalizer | None = None
    action_chain: dict[str, Any] = field(default_factory=dict)
    """``squash``/``clip_low``/``clip_high``/``scale``/``offset`` (see edgerl.export.registry)."""
    obs_space: dict[str, Any] | None = None
    """Observation-space description when the file records it (SB3), else None."""
    action_space: dict[str, Any] | None = None
    """Action-space description when the file records it (SB3), else None."""
    notes: list[str] = field(default_factory=list)

    @property
    def obs_shape(self) -> list[int]:
        """Shape of one observation the network takes."""
        encoder = getattr(self.net, "encoder", None)
        return list(encoder.in_shape) if encoder is not None else [int(self.net.in_dim)]

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.obs_shape, dtype=np.int64))

    @property
    def out_dim(self) -> int:
        """Number of action scores (discrete) or action elements (continuous)."""
        return int(getattr(self.net, "n_actions", None) or self.net.out_dim)

    @property
    def image(self) -> bool:
        return len(self.obs_shape) == 3


def load_tensors(path: str | os.PathLike, what: str) -> Any:
    """``torch.load(weights_only=True)`` of a foreign file, with a one-line error."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except Exception as e:  # unpickling refusal, truncation, not a torch file
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()] or [type(e).__name__]
        first = next((ln for ln in lines if "Unsupported global" in ln), lines[0])
        first = first.replace("WeightsUnpickler error: ", "").split(" was not an allowed global")[0][:200]
        raise ImportLayoutError(f"{path}: cannot read it as {what} with torch.load(weights_only=True) "
                                f"({first}); edgerl never unpickles code: save the state dict "
                                "(model.state_dict()) instead of the module") from None


def read_zip_member(path: str | os.PathLike, name: str) -> bytes | None:
    """One member of a zip archive as bytes (None when absent)."""
    try:
        with zipfile.ZipFile(path) as z:
            return z.read(name) if name in z.namelist() else None
    except zipfile.BadZipFile:
        raise ImportLayoutError(f"{path}: not a zip archive") from None


def tensor_dict(obj: Any, where: str) -> dict[str, torch.Tensor]:
    """The tensors of a (possibly nested) state dict, flattened to dotted keys."""
    out: dict[str, torch.Tensor] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            out[prefix] = value
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)

    walk("", obj)
    if not out:
        raise ImportLayoutError(f"{where} holds no tensors")
    return out


def linear_prefixes(state: Mapping[str, torch.Tensor], prefix: str) -> list[str]:
    """``prefix.N`` of the Linear layers ``prefix.N.weight`` (2-D) in numeric order of N."""
    found = []
    for key, value in state.items():
        rest = key[len(prefix):] if key.startswith(prefix) else None
        if rest is None or not rest.endswith(".weight") or value.dim() != 2:
            continue
        idx = rest[:-len(".weight")]
        if idx.isdigit():
            found.append((int(idx), f"{prefix}{idx}"))
    return [p for _, p in sorted(found)]


def build_mlp(state: Mapping[str, torch.Tensor], layers: Sequence[str], activation: str,
              out_activation: str | None = None) -> MLP:
    """An edgerl :class:`MLP` holding the Linear layers ``layers`` (``<name>.weight``/``.bias``) of ``state``."""
    if activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {activation!r}; known: {', '.join(sorted(ACTIVATIONS))}")
    if not layers:
        raise ImportLayoutError("no Linear layers found")
    weights = [state[f"{name}.weight"] for name in layers]
    for a, b, name in zip(weights, weights[1:], layers[1:], strict=False):
        if b.shape[1] != a.shape[0]:
            raise ImportLayoutError(f"layer {name} takes {b.shape[1]} inputs but the layer before gives "
                                    f"{a.shape[0]}; the layers are not one chain")
    net = MLP(weights[0].shape[1], weights[-1].shape[0], [w.shape[0] for w in weights[:-1]], activation,
              out_activation)
    with torch.no_grad():
        for linear, name in zip(net.linear_layers(), layers, strict=True):
            linear.weight.copy_(state[f"{name}.weight"].float())
            bias = state.get(f"{name}.bias")
            if bias is None:
                linear.bias.zero_()
            else:
                linear.bias.copy_(bias.float())
    return net.eval()


def build_recurrent(state: Mapping[str, torch.Tensor], rnn_prefix: str, layers: Sequence[str],
                    activation: str, out_activation: str | None = None) -> nn.Module:
    """An edgerl ``rnn_mlp`` (:class:`~edgerl.nets.recurrent.RecurrentMLP`): the torch LSTM/GRU
    ``<rnn_prefix>{weight,bias}_{ih,hh}_l<k>`` of ``state`` (unidirectional, any number of layers;
    the kind told by the gate rows: 4 x hidden for an LSTM, 3 x hidden for a GRU), then the MLP
    head of the Linear ``layers``."""
    from edgerl.nets.recurrent import RecurrentMLP

    w_ih = {int(k[len(rnn_prefix) + len("weight_ih_l"):]): v for k, v in state.items()
            if k.startswith(f"{rnn_prefix}weight_ih_l") and k[len(rnn_prefix) + len("weight_ih_l"):].isdigit()}
    odd = sorted(k[len(rnn_prefix):] for k in state if k.startswith(rnn_prefix) and
                 (k.endswith("_reverse") or "weight_hr" in k))
    if odd:
        raise ImportLayoutError(f"the recurrent memory {rnn_prefix[:-1]} has {odd[:3]}: bidirectional or projected "
                                "RNNs are not supported (edgerl imports unidirectional LSTM/GRU memories)")
    n_layers = len(w_ih)
    if n_layers == 0 or sorted(w_ih) != list(range(n_layers)) or f"{rnn_prefix}weight_hh_l0" not in state:
        raise ImportLayoutError(f"the recurrent memory {rnn_prefix[:-1]} lacks its weight_ih_l<k>/weight_hh_l<k> "
                                f"tensors (found {sorted(k for k in state if k.startswith(rnn_prefix))[:6]})")
    rows, hidden = (int(d) for d in state[f"{rnn_prefix}weight_hh_l0"].shape)
    kinds = {4: "lstm", 3: "gru"}
    if hidden == 0 or rows % hidden or rows // hidden not in kinds:
        raise ImportLayoutError(f"{rnn_prefix}weight_hh_l0 is {rows}x{hidden}: neither an LSTM (4 x hidden rows) "
                                "nor a GRU (3 x hidden rows)")
    kind = kinds[rows // hidden]
    head = build_mlp(state, layers, activation, out_activation)
    if head.in_dim != hidden:
        raise ImportLayoutError(f"the MLP head {layers[0]} takes {head.in_dim} inputs but the {kind} memory "
                                f"gives {hidden}; the layers are not one chain")
    net = RecurrentMLP(int(w_ih[0].shape[1]), head.out_dim, kind, hidden, n_layers, head.spec()["hidden"],
                       activation, out_activation)
    rnn_state = {k[len(rnn_prefix):]: v.float() for k, v in state.items() if k.startswith(rnn_prefix)}
    try:
        net.rnn.load_state_dict(rnn_state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0][:200]
        raise ImportLayoutError(f"the {kind} memory {rnn_prefix[:-1]} does not load as a torch {kind.upper()} "
                                f"({first})") from None
    net.head.load_state_dict(head.state_dict())
    return net.eval()


def build_nature_cnn(state: Mapping[str, torch.Tensor], prefix: str, head: str, in_shape: Sequence[int]) -> nn.Module:
    """An edgerl ``q_cnn`` (Nature CNN encoder on uint8 frames / 255 -> Linear head) holding SB3's
    ``NatureCNN`` (``<prefix>cnn.{0,2,4}``, ``<prefix>linear.0``) and the Linear ``head``."""
    from edgerl.nets import build_net

    convs = [f"{prefix}cnn.{i}" for i in (0, 2, 4)]
    if not all(f"{c}.weight" in state for c in [*convs, f"{prefix}linear.0", head]):
        raise ImportLayoutError(f"the CNN policy lacks layers of SB3's NatureCNN ({', '.join(convs)}, "
                                f"{prefix}linear.0) or its head {head}; other feature extractors are not supported")
    channels = [int(state[f"{c}.weight"].shape[0]) for c in convs]
    hidden = [int(state[f"{prefix}linear.0.weight"].shape[0])]
    n = int(state[f"{head}.weight"].shape[0])
    spec = {"type": "q_cnn", "kwargs": {"encoder": {"type": "nature_cnn", "kwargs": {
        "in_shape": [int(d) for d in in_shape], "channels": channels, "hidden": hidden}}, "n_actions": n}}
    try:
        net = build_net(spec)
    except Exception as e:  # an input shape that does not match the convolutions
        raise ImportLayoutError(f"cannot rebuild the Nature CNN for observations {list(in_shape)}: {e}") from None
    mapping = {**{f"encoder.convs.{i}": c for i, c in zip((0, 2, 4), convs, strict=True)},
               "encoder.fc.0": f"{prefix}linear.0", "q": head}
    ours = {f"{k}.{p}": state[f"{v}.{p}"].float() for k, v in mapping.items() for p in ("weight", "bias")}
    try:
        net.load_state_dict(ours)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0][:200]
        raise ImportLayoutError(f"the CNN's layers do not fit observations {list(in_shape)} ({first})") from None
    return net.eval()


NORMALIZER_FORMULAS = ("var", "std")
"""Where libraries put eps: ``var``: ``(x - mean) / sqrt(var + eps)`` (SB3 VecNormalize, gymnasium,
edgerl); ``std``: ``(x - mean) / (sqrt(var) + eps)`` (rsl_rl with eps 0.01, skrl with eps 1e-8)."""


def normalizer_from(mean: Any, var: Any, *, eps: float, clip: float, formula: str,
                    count: float = 1.0) -> ObsNormalizer:
    """An :class:`ObsNormalizer` computing the library's normalisation (flattened to one dimension).

    A ``std`` formula is stored as ``var = (sqrt(var) + eps)^2`` with ``eps = 0``: edgerl's
    ``sqrt(var + eps)`` then gives back exactly ``sqrt(var) + eps`` (the square root of a rounded
    square is exact in float64), so the checkpoint layout stays the one every edgerl version reads.
    The stored ``var`` is then the squared denominator, not the observed variance.
    """
    if formula not in NORMALIZER_FORMULAS:
        raise ConfigError(f"unknown normaliser formula {formula!r}; known: {list(NORMALIZER_FORMULAS)}")
    mean_a = np.asarray(mean, dtype=np.float64).reshape(-1)
    var_a = np.asarray(var, dtype=np.float64).reshape(-1)
    if mean_a.shape != var_a.shape:
        raise ImportLayoutError(f"normaliser mean has {mean_a.size} entries but its variance {var_a.size}")
    if formula == "std":
        var_a, eps = (np.sqrt(var_a) + eps) ** 2, 0.0
    norm = ObsNormalizer((mean_a.size,), clip=clip, eps=eps)
    norm.mean.copy_(torch.as_tensor(mean_a))
    norm.var.copy_(torch.as_tensor(var_a))
    norm.count.fill_(float(count))
    return norm


def normalizer_denominator(norm: ObsNormalizer) -> np.ndarray:
    """What ``norm`` divides by, per element (float64)."""
    return np.sqrt(norm.var.double().numpy() + norm.eps)


def unknown_layout(path: str | os.PathLike, keys: Sequence[str], known: Mapping[str, str]) -> ImportLayoutError:
    """The error for a file whose keys match no known layout: names both."""
    shown = ", ".join(sorted(keys)[:12]) + (f", ... ({len(keys)} keys)" if len(keys) > 12 else "")
    layouts = "; ".join(f"{k}: {v}" for k, v in known.items())
    return ImportLayoutError(f"{Path(path).name}: unknown layout (keys found: {shown}); known layouts: {layouts}")


def box_space(shape: Sequence[int], low: Any = None, high: Any = None, dtype: str = "float32") -> dict[str, Any]:
    """A Box space description (edgerl.envs.describe_space form); None/inf bounds become null."""
    n = int(np.prod(shape, dtype=np.int64))

    def bound(v: Any) -> list | None:
        if v is None:
            return [None] * n
        arr = np.broadcast_to(np.asarray(v, dtype=np.float64), (n,))
        if n > 4096 and np.all(arr == arr[0]):  # uniform image bounds: one value (edgerl.envs form)
            return [float(arr[0])] if np.isfinite(arr[0]) else None
        return [float(x) if np.isfinite(x) else None for x in arr]

    return {"kind": "box", "shape": [int(d) for d in shape], "dtype": dtype, "low": bound(low), "high": bound(high)}

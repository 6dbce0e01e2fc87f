"""Lower a :class:`~edgerl.export.wrappers.DeployedPolicy` to a :class:`~edgerl.export.native.ir.Program`.

The walk follows the deployed function the ONNX export traces: the wrapper's normaliser, SAC's
optional feature block (OFENet's state block: per-feature input scale, then dense layers whose
outputs are concatenated, BatchNorm folded, swish), the network, then the tanh squash and rescale
or the argmax. Networks lower by module class through :func:`register_lowering`; ``nn.Sequential``
(and subclasses), Linear, BatchNorm1d, the usual activations, Identity and Dropout are built in, so
any registered net that is a plain chain of those lowers without more code. Anything else (a CNN,
a net with its own ``forward``) is a one-line :class:`NativeExportError`. The caller checks the
lowered program against torch (:func:`edgerl.export.native.api.export_c`), so a lowering that
misreads a forward cannot go unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from edgerl.export.errors import ExportError
from edgerl.export.native.ir import (
    ActionChain,
    Activation,
    Argmax,
    Dense,
    Layer,
    Normalize,
    Program,
    RNNLayer,
    Scale,
    SquashRescale,
)
from edgerl.export.wrappers import (
    ActionChainPolicy,
    ArgmaxPolicy,
    DeployedPolicy,
    SquashedGaussianPolicy,
)
from edgerl.nets.mlp import MLP, ObsNormalizer, SquashedGaussianActor
from edgerl.nets.ofenet import DenseLayer, OFEStateBlock
from edgerl.nets.recurrent import RecurrentMLP
from edgerl.prune import InputScale


class NativeExportError(ExportError):
    """The policy holds something the C export does not cover (named in the message)."""


Lowering = Callable[[nn.Module, str, int], list[Layer]]
"""``lower(module, path, select) -> layers``; ``select`` picks the output of a tuple-returning net."""
_LOWERINGS: dict[type, Lowering] = {}

SCOPE = ("C export covers MLP policies: Linear layers with ReLU/ELU/LeakyReLU/tanh/SiLU/sigmoid, BatchNorm1d, "
         "OFENet state blocks, LSTM/GRU memories, the normaliser, tanh squash + rescale, an imported policy's "
         "clip/scale/offset chain, or argmax")


def register_lowering(cls: type[nn.Module]) -> Callable[[Lowering], Lowering]:
    """Decorator: lower modules of class ``cls`` (and subclasses without their own lowering) with ``fn``."""

    def deco(fn: Lowering) -> Lowering:
        _LOWERINGS[cls] = fn
        return fn

    return deco


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def lower_module(module: nn.Module, path: str, select: int = 0) -> list[Layer]:
    """Layers of ``module`` (registered lowering by class, most specific first)."""
    if module._forward_hooks or module._forward_pre_hooks:
        raise NativeExportError(f"module {path!r} ({type(module).__name__}) has forward hooks, which change its "
                                "function; compact the checkpoint first (edgerl compact) or export ONNX")
    for cls in type(module).__mro__:
        if cls in _LOWERINGS:
            return _LOWERINGS[cls](module, path, select)
    if any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in module.modules()):
        raise NativeExportError(f"network {path!r} ({type(module).__name__}) is convolutional: CNN policies are out of "
                                "scope for edgerl export --format c; export ONNX instead")
    raise NativeExportError(f"cannot lower {path!r} ({type(module).__name__}) to C: {SCOPE}; register a lowering "
                            "with edgerl.export.native.register_lowering, or export ONNX instead")


@register_lowering(nn.Sequential)
def _sequential(m: nn.Module, path: str, select: int) -> list[Layer]:
    return [layer for name, child in m.named_children() for layer in lower_module(child, f"{path}.{name}")]


@register_lowering(nn.Linear)
def _linear(m: nn.Module, path: str, select: int) -> list[Layer]:
    bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_features)
    return [Dense(path, _f32(_np(m.weight)), _f32(bias))]


@register_lowering(nn.BatchNorm1d)
def _batchnorm(m: nn.Module, path: str, select: int) -> list[Layer]:
    if m.training or not m.track_running_stats or m.running_mean is None:
        raise NativeExportError(f"BatchNorm {path!r} has no running statistics in eval mode; export ONNX instead")
    scale = (_np(m.weight) if m.affine else 1.0) / np.sqrt(_np(m.running_var) + m.eps)
    shift = (_np(m.bias) if m.affine else 0.0) - _np(m.running_mean) * scale
    return [Scale(path, np.asarray(scale, np.float64), np.asarray(shift, np.float64))]  # folded later, in float64


def _act(fn: str, alpha: Callable[[nn.Module], float] | None = None) -> Lowering:
    def lower(m: nn.Module, path: str, select: int) -> list[Layer]:
        return [Activation(path, fn, float(alpha(m)) if alpha else 0.0)]
    return lower


register_lowering(nn.ReLU)(_act("relu"))
register_lowering(nn.ELU)(_act("elu", lambda m: m.alpha))
register_lowering(nn.LeakyReLU)(_act("leaky_relu", lambda m: m.negative_slope))
register_lowering(nn.Tanh)(_act("tanh"))
register_lowering(nn.SiLU)(_act("silu"))
register_lowering(nn.Sigmoid)(_act("sigmoid"))
for _cls in (nn.Identity, nn.Dropout, nn.Flatten):
    register_lowering(_cls)(lambda m, path, select: [])


@register_lowering(InputScale)
def _input_scale(m: nn.Module, path: str, select: int) -> list[Layer]:
    return [Scale(path, _f32(_np(m.weight)), _f32(_np(m.bias)))]


@register_lowering(SquashedGaussianActor)
def _sac_actor(m: nn.Module, path: str, select: int) -> list[Layer]:
    if select != 0:
        raise NativeExportError(f"{path!r}: only output 0 (the mean) of a sac_actor is deployable, not {select}")
    return [*lower_module(m.trunk, f"{path}.trunk"), *lower_module(m.mean, f"{path}.mean")]


@register_lowering(MLP)
def _mlp(m: nn.Module, path: str, select: int) -> list[Layer]:
    """An imported policy's network: ``out(head(trunk(x)))``."""
    return [*lower_module(m.trunk, f"{path}.trunk"), *lower_module(m.head, f"{path}.head"),
            *lower_module(m.out, f"{path}.out")]


@register_lowering(RecurrentMLP)
def _recurrent_mlp(m: nn.Module, path: str, select: int) -> list[Layer]:
    """``head(rnn(x, state))`` for one step: one :class:`RNNLayer` per torch layer, then the head."""
    rnn = m.rnn
    if getattr(rnn, "proj_size", 0) or rnn.bidirectional or not rnn.bias or rnn.batch_first:
        raise NativeExportError(f"{path}.rnn: a projected, bidirectional, bias-free or batch-first "
                                f"{m.rnn_type} is out of scope for C; export ONNX instead")
    layers: list[Layer] = [RNNLayer(f"{path}.rnn.l{k}", m.rnn_type, k, *(_f32(_np(getattr(rnn, f"{w}_l{k}")))
                                                                      for w in ("weight_ih", "weight_hh", "bias_ih",
                                                                                "bias_hh")))
                           for k in range(rnn.num_layers)]
    return [*layers, *lower_module(m.head, f"{path}.head")]


@register_lowering(OFEStateBlock)
def _ofenet_state(m: nn.Module, path: str, select: int) -> list[Layer]:
    layers = lower_module(m.obs_in, f"{path}.obs_in")
    for i, dense in enumerate(m.layers):
        layers += _dense_concat(dense, f"{path}.layers.{i}")
    return layers


def _dense_concat(m: DenseLayer, path: str) -> list[Layer]:
    """One OFENet layer: ``x -> [x, swish(BN(fc(x)))]`` as one concat Dense."""
    fused = fuse([*lower_module(m.fc, f"{path}.fc"), *lower_module(m.bn, f"{path}.bn"),
                  *lower_module(m.act, f"{path}.act")])
    if len(fused) != 1 or not isinstance(fused[0], Dense):
        raise NativeExportError(f"OFENet layer {path!r} does not reduce to one dense layer; export ONNX instead")
    fused[0].concat, fused[0].name = True, path
    return fused


def fuse(layers: list[Layer]) -> list[Layer]:
    """Fold a Scale (BatchNorm) into the Dense before it and an activation into that Dense."""
    out: list[Layer] = []
    for layer in layers:
        prev = out[-1] if out else None
        if isinstance(prev, Dense) and not prev.concat and prev.fn == "identity" and isinstance(layer, Scale):
            w, b = prev.weight.astype(np.float64), prev.bias.astype(np.float64)
            prev.weight = _f32(w * layer.weight[:, None])
            prev.bias = _f32(b * layer.weight + layer.bias)
            prev.folded.append(f"{layer.name} (BatchNorm folded)")
        elif isinstance(prev, Dense) and not prev.concat and prev.fn == "identity" and isinstance(layer, Activation):
            prev.fn, prev.alpha = layer.fn, layer.alpha
            prev.folded.append(f"{layer.name} ({layer.fn})")
        else:
            out.append(layer)
    for layer in out:
        if isinstance(layer, Scale):
            layer.weight, layer.bias = _f32(layer.weight), _f32(layer.bias)
    return out


def _normalize(norm: ObsNormalizer) -> Normalize:
    # As ObsNormalizer.forward computes it in float32: mean cast, std = sqrt(var + eps) cast.
    mean = norm.mean.to(torch.float32).numpy()
    std = torch.sqrt(norm.var + norm.eps).to(torch.float32).numpy()
    return Normalize("normalizer", _f32(mean), _f32(std), float(norm.clip))


def _check_chain(layers: list[Layer], obs_dim: int) -> int:
    """Every layer takes the width the previous one gives; returns the width reaching the last layer."""
    n = obs_dim
    for layer in layers:
        if isinstance(layer, Dense):
            want = layer.weight.shape[1]
        elif isinstance(layer, Normalize):
            want = layer.mean.size
        elif isinstance(layer, Scale):
            want = layer.weight.size
        elif isinstance(layer, SquashRescale):
            want = layer.low.size
        elif isinstance(layer, ActionChain):
            want = layer.scale.size
        elif isinstance(layer, RNNLayer):
            want = layer.w_ih.shape[1]
        else:
            want = n
        if want != n:
            raise NativeExportError(f"layer {layer.name!r} takes {want} values but gets {n}; the network's forward "
                                    "is not the chain of its modules, so it cannot be lowered: export ONNX instead")
        if isinstance(layer, Dense):
            n = layer.weight.shape[0] + (n if layer.concat else 0)
        elif isinstance(layer, RNNLayer):
            n = layer.hidden
        for name, v in vars(layer).items():
            bounds = isinstance(layer, ActionChain) and name in ("clip_low", "clip_high")  # +-inf: no clip
            if isinstance(v, np.ndarray) and not np.all(np.isfinite(v) | (bounds & np.isinf(v))):
                raise NativeExportError(f"layer {layer.name!r} has non-finite {name}; the checkpoint is damaged")
    return n


def lower_policy(policy: DeployedPolicy) -> Program:
    """The deployed policy as a layer list (fp32 only).

    Raises:
        NativeExportError: fp16 weights, an image observation, or a module the C export does not cover.
    """
    if policy.precision != "fp32":
        raise NativeExportError("C export takes the fp32 policy; drop --fp16")
    layers: list[Layer] = [_normalize(policy.normalizer)] if policy.normalizer is not None else []
    if isinstance(policy, SquashedGaussianPolicy):
        if policy.features is not None:
            layers += lower_module(policy.features, "features")
        layers += lower_module(policy.net, "net", 0)
        low, half = policy.low.numpy(), policy.half_range.numpy()
        layers.append(SquashRescale("squash_rescale", _f32(low), _f32(half)))
        act_dim, discrete = low.size, False
    elif isinstance(policy, ActionChainPolicy):
        layers += lower_module(policy.net, "net", 0)
        layers.append(ActionChain("action_chain", policy.squash, policy.clips, policy.scales, policy.offsets,
                                  *(_f32(t.numpy()) for t in (policy.clip_low, policy.clip_high, policy.scale,
                                                              policy.offset))))
        act_dim, discrete = policy.scale.numel(), False
    elif isinstance(policy, ArgmaxPolicy):
        layers += lower_module(policy.net, "net", policy.select)
        layers.append(Argmax("argmax", policy.start))
        act_dim, discrete = 0, True
    else:
        raise NativeExportError(f"no C lowering for {type(policy).__name__}; {SCOPE}")
    layers = fuse(layers)
    obs_dim = _obs_dim(layers)
    n_out = _check_chain(layers, obs_dim)
    net = policy.recurrent
    state = None if net is None else (net.rnn_type, *net.state_shape)
    return Program(layers, obs_dim, n_out if discrete else int(act_dim), discrete, state)


def _obs_dim(layers: list[Layer]) -> int:
    for layer in layers:
        if isinstance(layer, Normalize):
            return int(layer.mean.size)
        if isinstance(layer, Scale):
            return int(layer.weight.size)
        if isinstance(layer, Dense):
            return int(layer.weight.shape[1])
        if isinstance(layer, RNNLayer):
            return int(layer.w_ih.shape[1])
    raise NativeExportError("the policy has no dense layer; nothing to lower")

"""The layer list a deployed MLP policy lowers to, and a float32 numpy interpreter of it.

A :class:`Program` is the deployed function as a chain of layers, each naming the module it came
from: normalise -> [per-feature scale] -> dense layers (activation fused; OFENet's dense layers
append their output to their input) -> tanh squash + rescale, or argmax. The C emitter
(:mod:`edgerl.export.native.emit`) writes one loop nest per layer; :func:`run_program` runs the same
list in numpy, so a lowering can be checked against torch without a compiler. Imported policies
end in an :class:`ActionChain` (clip, scale, offset) instead of the squash and rescale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ACTIVATIONS = ("identity", "relu", "elu", "tanh", "silu", "sigmoid", "leaky_relu")
"""Activations the emitter knows (``alpha``: ELU's alpha, LeakyReLU's negative slope)."""


@dataclass
class Normalize:
    """``y = clamp((x - mean) / std, -clip, clip)`` (edgerl's ObsNormalizer, float32 mean and std)."""

    name: str
    mean: np.ndarray
    std: np.ndarray
    clip: float


@dataclass
class Scale:
    """``y = x * weight + bias`` per feature (InputScale; a BatchNorm not after a Linear)."""

    name: str
    weight: np.ndarray
    bias: np.ndarray


@dataclass
class Activation:
    """An activation not fused into a dense layer."""

    name: str
    fn: str
    alpha: float = 0.0


@dataclass
class Dense:
    """``y = fn(W x + b)``; with ``concat`` ``y = [x, fn(W x + b)]`` (an OFENet dense layer)."""

    name: str
    weight: np.ndarray
    """``[out, in]`` as in torch's Linear."""
    bias: np.ndarray
    fn: str = "identity"
    alpha: float = 0.0
    concat: bool = False
    folded: list[str] = field(default_factory=list)
    """Modules folded into this layer (BatchNorm, activation), for the generated comments."""


@dataclass
class RNNLayer:
    """Layer ``index`` of a torch LSTM (gates i, f, g, o) or GRU (gates r, z, n), one time step:
    the input is the previous layer's new ``h`` (the observation features for layer 0), and the
    state is ``[tensor (h[, c])][layer][hidden]``, as the ONNX graph's ``h_in``/``c_in``."""

    name: str
    kind: str
    index: int
    w_ih: np.ndarray
    """``[gates * hidden, in]`` as torch's ``weight_ih_l{index}``."""
    w_hh: np.ndarray
    """``[gates * hidden, hidden]``."""
    b_ih: np.ndarray
    b_hh: np.ndarray

    @property
    def hidden(self) -> int:
        return int(self.w_hh.shape[1])


@dataclass
class SquashRescale:
    """``action = low + (tanh(x) + 1) * half_range`` (SAC's deterministic head)."""

    name: str
    low: np.ndarray
    half_range: np.ndarray


@dataclass
class ActionChain:
    """``action = offset + scale * clamp([tanh](x), clip_low, clip_high)`` per element: the post-
    processing of imported policies (:class:`~edgerl.export.wrappers.ActionChainPolicy`). Each step
    runs only where its flag is set, as in torch; an infinite clip bound clips nothing."""

    name: str
    squash: bool
    clips: bool
    scales: bool
    offsets: bool
    clip_low: np.ndarray
    clip_high: np.ndarray
    scale: np.ndarray
    offset: np.ndarray


@dataclass
class Argmax:
    """``action = start + argmax(x)`` (first maximum, as torch and ONNX Runtime)."""

    name: str
    start: int


Layer = Normalize | Scale | Activation | Dense | RNNLayer | SquashRescale | ActionChain | Argmax


@dataclass
class Program:
    """A lowered policy: its layers in order and the I/O sizes."""

    layers: list[Layer]
    obs_dim: int
    act_dim: int
    """Action size (continuous) or number of discrete actions."""
    discrete: bool
    state: tuple[str, int, int] | None = None
    """A recurrent policy's ``(kind, layers, hidden)``; None for a feed-forward one."""

    @property
    def state_tensors(self) -> int:
        """State tensors (``h``, ``c`` for an LSTM; ``h`` for a GRU); 0 when feed-forward."""
        return 0 if self.state is None else (2 if self.state[0] == "lstm" else 1)

    @property
    def state_size(self) -> int:
        """Floats of one step's state (all tensors, layers and units)."""
        return 0 if self.state is None else self.state_tensors * self.state[1] * self.state[2]

    @property
    def params(self) -> int:
        """Stored constants of the layers (weights, biases, normaliser and rescale vectors)."""
        total = 0
        for layer in self.layers:
            for v in vars(layer).values():
                if isinstance(v, np.ndarray):
                    total += v.size
        return total

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the dense and recurrent layers per call."""
        return sum(int(layer.weight.size) if isinstance(layer, Dense) else int(layer.w_ih.size + layer.w_hh.size)
                   for layer in self.layers if isinstance(layer, (Dense, RNNLayer)))


def activate(x: np.ndarray, fn: str, alpha: float = 0.0) -> np.ndarray:
    """Apply an activation in float32 (the numpy twin of the emitted C)."""
    if fn == "identity":
        return x
    if fn == "relu":
        return np.maximum(x, np.float32(0))
    if fn == "elu":
        return np.where(x > 0, x, np.float32(alpha) * np.expm1(x)).astype(np.float32)
    if fn == "tanh":
        return np.tanh(x)
    if fn == "silu":
        return x / (np.float32(1) + np.exp(-x))
    if fn == "sigmoid":
        return np.float32(1) / (np.float32(1) + np.exp(-x))
    if fn == "leaky_relu":
        return np.where(x > 0, x, np.float32(alpha) * x).astype(np.float32)
    raise ValueError(f"unknown activation {fn!r}; known: {ACTIVATIONS}")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.float32(1) / (np.float32(1) + np.exp(-x))


def _rnn_step(layer: RNNLayer, x: np.ndarray, state: list[np.ndarray]) -> np.ndarray:
    """One time step of ``layer`` on ``x [n, in]``, updating ``state`` (each ``[layers, n, hidden]``)
    in place at ``layer.index``; returns the new ``h`` (the next layer's input)."""
    hid, h = layer.hidden, state[0][layer.index]
    gi, gh = x @ layer.w_ih.T + layer.b_ih, h @ layer.w_hh.T + layer.b_hh
    if layer.kind == "lstm":
        g = gi + gh
        i, f, c_new, o = (g[:, k * hid:(k + 1) * hid] for k in range(4))
        c = _sigmoid(f) * state[1][layer.index] + _sigmoid(i) * np.tanh(c_new)
        state[1][layer.index], state[0][layer.index] = c, _sigmoid(o) * np.tanh(c)
    else:
        r = _sigmoid(gi[:, :hid] + gh[:, :hid])
        z = _sigmoid(gi[:, hid:2 * hid] + gh[:, hid:2 * hid])
        n = np.tanh(gi[:, 2 * hid:] + r * gh[:, 2 * hid:])
        state[0][layer.index] = (np.float32(1) - z) * n + z * h
    return state[0][layer.index]


def step_program(program: Program, obs: np.ndarray, state: list[np.ndarray] | None = None
                 ) -> tuple[np.ndarray, list[np.ndarray]]:
    """One control step of ``program`` for ``n`` streams: ``(actions, next state)``; ``state`` is a
    list of ``[layers, n, hidden]`` float32 arrays (zeros when None, an episode's first step; left
    unchanged). A feed-forward program has the state ``[]``."""
    x = np.asarray(obs, dtype=np.float32)
    if program.state is None:
        new: list[np.ndarray] = []
    elif state is None:
        new = [np.zeros((program.state[1], len(x), program.state[2]), np.float32)
               for _ in range(program.state_tensors)]
    else:
        new = [np.array(s, dtype=np.float32) for s in state]
    with np.errstate(over="ignore", invalid="ignore"):
        for layer in program.layers:
            if isinstance(layer, Normalize):
                x = np.clip((x - layer.mean) / layer.std, -np.float32(layer.clip), np.float32(layer.clip))
            elif isinstance(layer, Scale):
                x = x * layer.weight + layer.bias
            elif isinstance(layer, Activation):
                x = activate(x, layer.fn, layer.alpha)
            elif isinstance(layer, Dense):
                y = activate(x @ layer.weight.T + layer.bias, layer.fn, layer.alpha)
                x = np.concatenate([x, y], axis=1) if layer.concat else y
            elif isinstance(layer, SquashRescale):
                x = layer.low + (np.tanh(x) + np.float32(1)) * layer.half_range
            elif isinstance(layer, RNNLayer):
                x = _rnn_step(layer, x, new)
            elif isinstance(layer, ActionChain):
                x = np.tanh(x) if layer.squash else x
                x = np.where(x < layer.clip_low, layer.clip_low, np.where(x > layer.clip_high, layer.clip_high, x)
                             ).astype(np.float32) if layer.clips else x
                x = x * layer.scale if layer.scales else x
                x = x + layer.offset if layer.offsets else x
            elif isinstance(layer, Argmax):
                x = np.argmax(x, axis=1).astype(np.int64) + layer.start
    return x, new


def run_program(program: Program, obs: np.ndarray) -> np.ndarray:
    """Run a feed-forward ``program`` on ``[n, obs_dim]`` float32 observations: actions ``[n, act_dim]``
    or ``[n]`` (a recurrent one runs step by step: :func:`step_program`)."""
    if program.state is not None:
        raise ValueError("a recurrent program runs one step at a time with its state: use step_program")
    return step_program(program, obs)[0]

"""Recurrent actor: observation -> LSTM/GRU memory -> MLP head, with the hidden state explicit.

The network of recurrent policies imported from other libraries (rsl_rl's ``ActorCriticRecurrent``
and ``RNNModel``): one step per call, ``forward(x, h[, c]) -> (y, h_out[, c_out])`` with states
shaped ``[layers, batch, hidden]`` (torch's RNN layout). Nothing is kept inside the module: the
caller (the deployed policy, the runtime) owns the state, feeds it back, and zeros it at episode
start, so the exported graph is a pure function and the state a visible input/output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgerl.nets.mlp import MLP
from edgerl.nets.registry import register_net
from edgerl.runtime.contract import RECURRENT_STATES

RNN_KINDS = {"lstm": nn.LSTM, "gru": nn.GRU}
"""Memory kinds by name; an LSTM carries two state tensors (h, c), a GRU one (h)
(:data:`~edgerl.runtime.contract.RECURRENT_STATES`, the order ``forward`` takes and returns them)."""


@register_net("rnn_mlp")
class RecurrentMLP(nn.Module):
    """``y = head(rnn(x, state))`` for one time step; ``head`` is an edgerl :class:`MLP`."""

    def __init__(self, in_dim: int, out_dim: int, rnn_type: str, rnn_hidden: int, rnn_layers: int,
                 hidden: Sequence[int], activation: str = "elu", out_activation: str | None = None):
        super().__init__()
        if rnn_type not in RNN_KINDS:
            raise ValueError(f"unknown recurrent kind {rnn_type!r}; known: {sorted(RNN_KINDS)}")
        self.rnn_type = rnn_type
        self.rnn = RNN_KINDS[rnn_type](input_size=int(in_dim), hidden_size=int(rnn_hidden),
                                       num_layers=int(rnn_layers))
        self.head = MLP(int(rnn_hidden), int(out_dim), hidden, activation, out_activation)
        self.in_dim, self.out_dim = int(in_dim), int(out_dim)
        self.activation = self.head.activation

    @property
    def state_names(self) -> tuple[str, ...]:
        """``("h", "c")`` for an LSTM, ``("h",)`` for a GRU."""
        return RECURRENT_STATES[self.rnn_type]

    @property
    def state_shape(self) -> tuple[int, int]:
        """``(layers, hidden)``: each state tensor is ``[layers, batch, hidden]``."""
        return self.rnn.num_layers, self.rnn.hidden_size

    def spec(self) -> dict:
        head = self.head.spec()
        return {"in_dim": self.in_dim, "out_dim": self.out_dim, "rnn_type": self.rnn_type,
                "rnn_hidden": self.rnn.hidden_size, "rnn_layers": self.rnn.num_layers, "hidden": head["hidden"],
                "activation": head["activation"], "out_activation": head["out_activation"]}

    def zero_state(self, batch: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
        """The state at episode start: zeros, one tensor per :attr:`state_names`."""
        layers, hidden = self.state_shape
        return tuple(torch.zeros(layers, batch, hidden, dtype=dtype) for _ in self.state_names)

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        dtype = self.rnn.weight_hh_l0.dtype  # float16 after DeployedPolicy.to_fp16
        out, new = self._memory(x.to(dtype).unsqueeze(0), state)
        return self.head(out.squeeze(0)), *new

    def forward_sequence(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """:meth:`forward` over ``x[T, batch, in]`` at once (one call of the LSTM/GRU, not T): the
        outputs ``[T, batch, out]`` and the state after the last step. Nothing resets the state
        inside: the caller splits a sequence at episode starts (training a distilled student)."""
        out, new = self._memory(x.to(self.rnn.weight_hh_l0.dtype), state)
        return self.head(out), *new

    def _memory(self, x: torch.Tensor, state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The LSTM/GRU over ``x[T, batch, in]`` (in the weights' dtype) from ``state``: its outputs
        and the state after the last step."""
        if len(state) != len(self.state_names):
            raise ValueError(f"a {self.rnn_type} takes {len(self.state_names)} state tensors "
                             f"{list(self.state_names)}, got {len(state)}")
        dtype = self.rnn.weight_hh_l0.dtype
        if self.rnn_type == "lstm":
            out, (h, c) = self.rnn(x, (state[0].to(dtype), state[1].to(dtype)))
            return out, (h, c)
        out, h = self.rnn(x, state[0].to(dtype))
        return out, (h,)

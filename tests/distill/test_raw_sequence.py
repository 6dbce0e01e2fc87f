"""``raw_sequence`` (the memory run once per stretch between episode starts, what a recurrent
student trains through) equals the deployed function stepped one observation at a time
(``DeployedPolicy.run_sequence``, the path export, deploy and the runtime check against)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgerl.distill.api import _Data
from edgerl.distill.student import raw_sequence
from edgerl.export.wrappers import ActionChainPolicy, ArgmaxPolicy
from edgerl.nets.mlp import ObsNormalizer
from edgerl.nets.recurrent import RecurrentMLP

T, B, OBS, OUT = 23, 4, 5, 3


def _policy(kind: str, layers: int, discrete: bool, normalise: bool):
    torch.manual_seed(3)
    net = RecurrentMLP(OBS, OUT, kind, rnn_hidden=7, rnn_layers=layers, hidden=[6])
    with torch.no_grad():  # memory that matters: the outputs depend on the past
        net.rnn.weight_hh_l0.mul_(3.0)
    norm = None
    if normalise:
        norm = ObsNormalizer((OBS,))
        norm.update(torch.randn(64, OBS, dtype=torch.float64) * 3.0 + 1.0)
    if discrete:
        return ArgmaxPolicy(net, norm)
    return ActionChainPolicy(net, norm, act_dim=OUT)


def _stepwise_raw(policy, obs: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """The raw outputs (pre-chain network output, or scores) stepped one observation at a time
    through the wrapper's own step, state fed back and zeroed where ``starts``."""
    if isinstance(policy, ArgmaxPolicy):
        return policy.run_sequence(obs, starts, step=policy.score_step)[0]

    def step(o, state):
        y, *new = policy.net(policy._normalized(o), *state)
        return policy._float32(y), tuple(policy._float32(s) for s in new)

    return policy.run_sequence(obs, starts, step=step)[0]


def _starts() -> torch.Tensor:
    s = torch.zeros(T, B, dtype=torch.bool)
    s[0, 0] = s[0, 2] = True  # some streams start at t = 0, others are mid-episode (same zero state)
    s[5, 1] = True            # a reset in one stream only
    s[6, 1] = True            # two in a row
    s[11, 0] = s[11, 3] = True
    s[T - 1, 2] = True        # on the last step
    return s


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("normalise", [False, True])
def test_raw_sequence_equals_the_stepwise_deployed_function(kind, layers, discrete, normalise):
    policy = _policy(kind, layers, discrete, normalise)
    obs, starts = torch.randn(T, B, OBS) * 2.0, _starts()
    want = _stepwise_raw(policy, obs, starts)
    with torch.no_grad():
        got, last = raw_sequence(policy, obs, starts)
    assert got.shape == want.shape == (T, B, OUT)
    gap = float((got - want).abs().max())
    assert gap <= 1e-5, gap  # fails on NaN too
    # the final state is the stepwise one after the last step
    step_states = policy.run_sequence(obs, starts, step=policy.score_step if discrete else None)[1]
    for s, ref in zip(last, step_states, strict=True):
        assert float((s - ref[-1]).abs().max()) <= 1e-5
    # the resets matter: without them the outputs differ
    no_reset = _stepwise_raw(policy, obs, torch.zeros(T, B, dtype=torch.bool))
    assert float((no_reset - want).abs().max()) > 1e-3
    if not discrete:  # and the deployed actions are the chain of those outputs
        acts = policy.run_sequence(obs, starts)[0]
        assert float((policy._chain(got) - acts).abs().max()) <= 1e-5


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_raw_sequence_continues_from_a_given_state(kind):
    """Burn-in then loss steps (two calls, the state handed over) equal one call over both, and a
    start on the second call's first step zeroes the handed-over state in that stream."""
    policy = _policy(kind, 2, False, True)
    obs, starts = torch.randn(T, B, OBS), _starts()
    starts[8, 1] = True
    with torch.no_grad():
        whole, _ = raw_sequence(policy, obs, starts)
        _, state = raw_sequence(policy, obs[:8], starts[:8])
        tail, _ = raw_sequence(policy, obs[8:], starts[8:], state)
    assert float((tail - whole[8:]).abs().max()) <= 1e-5


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_raw_sequence_in_float16_matches_the_stepwise_float16_policy(kind):
    policy = _policy(kind, 2, False, True).to_fp16()
    obs, starts = torch.randn(T, B, OBS), _starts()
    want = _stepwise_raw(policy, obs, starts)
    with torch.no_grad():
        got, last = raw_sequence(policy, obs, starts)
    assert got.dtype == torch.float32 and all(s.dtype == torch.float32 for s in last)
    gap = float((got - want).abs().max())
    assert gap <= 1e-2, gap  # float16 rounding only; fails on NaN too


def test_windows_never_hold_out_rows():
    n = 20
    holdout = np.zeros(n, dtype=bool)
    holdout[[4, 15, 16]] = True
    data = _Data(np.zeros((n, 1), np.float32), np.zeros((n, 1), np.float32), np.zeros(n, np.int64), holdout,
                 np.zeros(n, dtype=bool))
    for length in (1, 3, 5):
        first = data.windows(length)
        want = [i for i in range(n - length + 1) if not holdout[i:i + length].any()]
        assert first.tolist() == want
    assert data.windows(10).tolist() == [5]  # rows 5..14: the only run of 10 training rows

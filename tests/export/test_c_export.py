"""``edgerl export --format c``: the generated C matches ONNX Runtime, rejects NaN/inf, stays in scope.

The C is built here with gcc ``-Wall -Wextra -Werror -pedantic -std=c99`` and compared with the ONNX
file exported from the same checkpoint, on 10,000 observations (max |diff| <= 1e-5, NaN-safe).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgerl.checkpoint import load_checkpoint
from edgerl.cli import main as cli_main
from edgerl.export import export_policy, policy_from_checkpoint
from edgerl.export.native import NativeExportError, export_c, lower_policy, run_program
from edgerl.export.native.lower import lower_module
from edgerl.runtime.backends.c import CFLAGS, STRICT_FLAGS, NativePolicy, compile_c, find_compiler
from tests.export.c_policies import make_policy

needs_cc = pytest.mark.skipif(find_compiler() is None, reason="no C compiler (cc/gcc/clang) on PATH")
N_OBS = 10_000
CASES = [("sac-ofenet", "dense"), ("dqn-mlp", "compact")]
SLOW_CASES = [("sac", "dense"), ("sac", "compact"), ("sac-ofenet", "compact"), ("ppo-mlp", "dense"),
              ("ppo-mlp", "compact"), ("dqn-mlp", "dense")]


def _observations(ckpt_path: Path, n: int = N_OBS, seed: int = 3) -> np.ndarray:
    """Around the normaliser's statistics, 5% far outside them (the clip), float32."""
    policy = policy_from_checkpoint(load_checkpoint(ckpt_path))
    norm = policy.normalizer
    mean, std = norm.mean.numpy(), np.sqrt(norm.var.numpy())
    rng = np.random.default_rng(seed)
    obs = rng.normal(mean, 2 * std, size=(n, mean.size))
    obs[: n // 20] *= 40.0
    return obs.astype(np.float32)


def _build(src_dir: Path) -> NativePolicy:
    lib = src_dir / "policy.so"
    compile_c([src_dir / "policy.c"], lib, (*CFLAGS, *STRICT_FLAGS))
    return NativePolicy(lib)


def _check_case(kind: str, variant: str, tmp: Path) -> None:
    ckpt = make_policy(kind, variant, tmp)
    export_c(ckpt, tmp / "c")
    onnx_path = tmp / "policy.onnx"
    export_policy(ckpt, onnx_path, recorded_steps=0)
    obs = _observations(ckpt)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"obs": obs})[0]
    got, rc = _build(tmp / "c").act_batch(obs)
    assert rc == 0
    if kind.startswith("sac"):
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        assert got.shape == want.shape and np.isfinite(diff).all() and diff.max() <= 1e-5, diff.max()
    else:
        # Equal argmax, except where torch's two best scores tie within 1e-5 (neither answer is wrong).
        policy = policy_from_checkpoint(load_checkpoint(ckpt))
        with torch.no_grad():
            scores = policy.scores(torch.as_tensor(obs)).numpy()
        top2 = np.sort(scores, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 1e-5
        assert clear.mean() > 0.99 and got.dtype == np.int32
        np.testing.assert_array_equal(got[clear], want[clear])
        assert len(np.unique(got)) == 2  # both actions occur: the comparison is not trivially constant


@needs_cc
@pytest.mark.parametrize(("kind", "variant"), CASES)
def test_c_matches_onnx_runtime(kind: str, variant: str, tmp_path: Path) -> None:
    _check_case(kind, variant, tmp_path)


@pytest.mark.slow
@needs_cc
@pytest.mark.parametrize(("kind", "variant"), SLOW_CASES)
def test_c_matches_onnx_runtime_all(kind: str, variant: str, tmp_path: Path) -> None:
    _check_case(kind, variant, tmp_path)


@pytest.fixture(scope="module")
def sac_c(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sac-c")
    export_c(make_policy("sac", "dense", tmp), tmp / "c")
    return tmp / "c"


@needs_cc
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_observation_returns_error_and_keeps_action(sac_c: Path, bad: float, tmp_path: Path) -> None:
    shutil.copytree(sac_c, tmp_path / "c")
    lib = _build(tmp_path / "c")
    act = np.full(lib.act_dim, 7.0, np.float32)
    for index in (0, lib.obs_dim - 1):
        obs = np.zeros(lib.obs_dim, np.float32)
        obs[index] = bad
        rc = lib.act_fn(obs.ctypes.data, act.ctypes.data, ctypes.addressof(lib.scratch))
        assert rc == 1 and np.all(act == 7.0)
    assert lib.act_fn(np.zeros(lib.obs_dim, np.float32).ctypes.data, act.ctypes.data,
                      ctypes.addressof(lib.scratch)) == 0
    assert not np.any(act == 7.0)


@needs_cc
def test_no_writable_globals_and_header_contract(sac_c: Path, tmp_path: Path) -> None:
    """Weights are const (rodata); no .data/.bss symbol: nothing global is written, so edgerl_act is reentrant."""
    obj = tmp_path / "policy.o"
    subprocess.run([find_compiler(), "-std=c99", "-O2", "-c", str(sac_c / "policy.c"), "-o", str(obj)], check=True)
    symbols = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout.split("\n")
    writable = [line for line in symbols if line.split()[1:2] and line.split()[1] in "dDbBcC"]
    assert writable == []
    header = (sac_c / "policy.h").read_text()
    for needle in ("#define EDGERL_OBS_DIM 11", "#define EDGERL_ACT_DIM 3", "#define EDGERL_DISCRETE 0",
                   "int edgerl_act(const float *obs, edgerl_action_t *action, edgerl_scratch *s);"):
        assert needle in header
    source = (sac_c / "policy.c").read_text()
    assert "static const float net_trunk_0_w[11][32]" in source and "/* net.trunk.0: Linear 11 -> 32" in source
    assert "malloc" not in source and "static float" not in source


def test_lowering_matches_torch_without_compiler(tmp_path: Path) -> None:
    """The layer list alone (numpy) computes the torch policy: OFENet BatchNorm folded, swish, concat."""
    policy = policy_from_checkpoint(load_checkpoint(make_policy("sac-ofenet", "dense", tmp_path)))
    program = lower_policy(policy)
    assert [type(la).__name__ for la in program.layers] == [
        "Normalize", "Scale", "Dense", "Dense", "Dense", "Dense", "Dense", "SquashRescale"]
    assert [la.concat for la in program.layers[2:4]] == [True, True]
    obs = _observations(tmp_path / "dense.pt", n=500)
    with torch.no_grad():
        want = policy(torch.as_tensor(obs)).numpy()
    diff = np.abs(run_program(program, obs) - want)
    assert np.isfinite(diff).all() and diff.max() <= 1e-5


class _Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * 2


@pytest.mark.parametrize(("module", "match"), [
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2)), "CNN policies are out of scope"),
    (_Custom(), "cannot lower 'net' \\(_Custom\\) to C"),
])
def test_out_of_scope_is_one_line_error(module: nn.Module, match: str) -> None:
    with pytest.raises(NativeExportError, match=match) as e:
        lower_module(module, "net")
    assert "\n" not in str(e.value)


@needs_cc
def test_cli_export_format_c(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = make_policy("sac", "dense", tmp_path)
    assert cli_main(["export", str(ckpt), "--format", "c", "-o", str(tmp_path / "out")]) == 0
    assert "compiled-parity" in capsys.readouterr().out and (tmp_path / "out" / "policy.c").is_file()
    assert cli_main(["export", str(ckpt), "--format", "c", "-o", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "writes policy.h and policy.c into a folder" in err


def test_tuple_output_net_lowers_the_selected_output(tmp_path: Path) -> None:
    """PPO-MLP: the actor returns (logits, extra head); the argmax reads output 0 only."""
    report = export_c(make_policy("ppo-mlp", "dense", tmp_path), tmp_path / "c")
    assert report.discrete and report.act_dim == 2 and report.layers[-2:] == ["net.mean", "argmax"]
    assert report.max_abs_diff["ir"] == 0.0
    assert "compiled-parity" in report.checks or find_compiler() is None
    assert "typedef int32_t edgerl_action_t;" in (tmp_path / "c" / "policy.h").read_text()


def _imported(kind: str, tmp: Path) -> Path:
    """A policy imported from another library: rsl_rl with an io.yaml action chain (clip, scale,
    offset), rsl_rl without one (unbounded actions), or a CleanRL DQN (argmax of an MLP)."""
    from edgerl.checkpoint import save_checkpoint
    from edgerl.interop import import_policy

    torch.manual_seed(5)
    if kind == "cleanrl-dqn":
        net = nn.Sequential(nn.Linear(4, 24), nn.Tanh(), nn.Linear(24, 24), nn.Tanh(), nn.Linear(24, 5))
        torch.save({f"network.{k}": v for k, v in net.state_dict().items()}, tmp / "dqn.cleanrl_model")
        payload, _ = import_policy(tmp / "dqn.cleanrl_model", "cleanrl")
    else:
        actor = nn.Sequential(nn.Linear(6, 32), nn.ELU(), nn.Linear(32, 32), nn.ELU(), nn.Linear(32, 3))
        torch.save({"model_state_dict": {**{f"actor.{k}": v for k, v in actor.state_dict().items()},
                                         "std": torch.ones(3)}}, tmp / "model_1.pt")
        io = None
        if kind == "rsl_rl-chain":
            io = tmp / "io.yaml"
            io.write_text("action:\n  clip: 0.4\n  scale: 0.5\n  offset: [0.1, -0.2, 0.3]\n")
        payload, _ = import_policy(tmp / "model_1.pt", "rsl_rl", io_path=io)
    save_checkpoint(tmp / "p.pt", payload)
    return tmp / "p.pt"


@needs_cc
@pytest.mark.parametrize("kind", ["rsl_rl-chain", "rsl_rl-plain", "cleanrl-dqn"])
def test_imported_policies_export_to_c(kind: str, tmp_path: Path) -> None:
    """Imported networks (edgerl's MLP) and their action chains lower to C that equals ONNX Runtime;
    an unbounded action is INFINITY in the header; an NaN network output is refused, not clipped."""
    ckpt = _imported(kind, tmp_path)
    report = export_c(ckpt, tmp_path / "c")
    assert report.layers[-1] == ("argmax" if kind == "cleanrl-dqn" else "action_chain")
    export_policy(ckpt, tmp_path / "policy.onnx", recorded_steps=0)
    obs = np.random.default_rng(0).normal(0, 3, size=(5000, report.obs_dim)).astype(np.float32)
    want = ort.InferenceSession(str(tmp_path / "policy.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"obs": obs})[0]
    lib = _build(tmp_path / "c")
    got, rc = lib.act_batch(obs)
    assert rc == 0
    if kind == "cleanrl-dqn":
        assert got.dtype == np.int32 and (got == want).mean() > 0.999 and len(np.unique(got)) >= 3
        return
    diff = np.abs(got.astype(np.float64) - want)
    assert np.isfinite(diff).all() and diff.max() <= 1e-5, diff.max()
    header = (tmp_path / "c" / "policy.c").read_text()
    if kind == "rsl_rl-chain":
        assert np.all(got >= np.array([-0.1, -0.4, 0.1]) - 1e-6) and np.all(got <= np.array([0.3, 0.0, 0.5]) + 1e-6)
        assert (np.abs(got - [0.3, 0.0, 0.5]) < 1e-6).any()  # the clip is active on some observations
        assert "edgerl_action_low[EDGERL_ACT_DIM] = {-0.100000001f" in header
    else:
        assert "edgerl_action_low[EDGERL_ACT_DIM] = {(-INFINITY), (-INFINITY), (-INFINITY)}" in header
        assert "action_clip_low" not in header  # nothing to clip
    # A network that outputs NaN (a poisoned bias) is an error, not an action clipped to a bound.
    policy_c = (tmp_path / "c" / "policy.c").read_text()
    poisoned = tmp_path / "nan"
    poisoned.mkdir()
    (poisoned / "policy.h").write_text((tmp_path / "c" / "policy.h").read_text())
    first_bias = policy_c.index("net_head_b[")
    start = policy_c.index("{", first_bias) + 1
    (poisoned / "policy.c").write_text(policy_c[:start] + " NAN," + policy_c[policy_c.index(",", start) + 1:])
    assert _build(poisoned).act_batch(obs[:1])[1] == 2  # EDGERL_ERR_ACTION_NONFINITE


@needs_cc
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_policy_in_c_equals_onnx_runtime_with_resets(kind: str, tmp_path: Path) -> None:
    """An rsl_rl LSTM/GRU policy (2 layers, normaliser) as C: ``edgerl_step`` over a 3,000-step stream
    with episode resets gives ONNX Runtime's actions and states; a NaN state is an error that writes
    neither the action nor the state."""
    from edgerl.checkpoint import save_checkpoint
    from edgerl.export.checks import ort_sequence, stream_starts
    from edgerl.interop import import_policy
    from tests.interop.test_cli_import import _rsl_rl_recurrent

    payload, _ = import_policy(_rsl_rl_recurrent(tmp_path, kind), "rsl_rl")
    save_checkpoint(tmp_path / "p.pt", payload)
    report = export_c(tmp_path / "p.pt", tmp_path / "c")
    assert report.layers[1:3] == ["net.rnn.l0", "net.rnn.l1"] and report.macs > 0
    header = (tmp_path / "c" / "policy.h").read_text()
    assert "#define EDGERL_RECURRENT 1" in header and f'#define EDGERL_STATE_KIND "{kind}"' in header
    assert "int edgerl_step(" in header and "edgerl_act_batch" not in header
    export_policy(tmp_path / "p.pt", tmp_path / "policy.onnx", recorded_steps=0)
    obs = np.random.default_rng(4).normal(0.0, 2.0, size=(3000, 3)).astype(np.float32)
    starts = stream_starts(len(obs))
    sess = ort.InferenceSession(str(tmp_path / "policy.onnx"), providers=["CPUExecutionProvider"])
    want, want_states = ort_sequence(sess, obs[:, None], starts[:, None], kind, 2, 8)
    lib = _build(tmp_path / "c")
    assert lib.state_shape == (2 if kind == "lstm" else 1, 2, 8)
    from edgerl.export.native.footprint import footprint, scratch_bytes

    assert footprint(tmp_path / "c")["ram"] == scratch_bytes(tmp_path / "c") + 4 * lib.state_size  # the caller's state
    state = np.zeros(lib.state_size, np.float32)
    got, states = [], []
    for t in range(len(obs)):
        a, state, rc = lib.step(obs[t], np.zeros_like(state) if starts[t] else state)
        assert rc == 0
        got.append(a)
        states.append(state)
    diff = np.abs(np.asarray(got, np.float64) - want[:, 0])
    assert np.isfinite(diff).all() and diff.max() <= 1e-5, diff.max()
    flat = np.concatenate([s[:, :, 0, :].reshape(len(obs), -1) for s in want_states], axis=1)  # [T, tensor*layer*unit]
    assert np.abs(np.asarray(states) - flat).max() <= 1e-5
    assert np.abs(np.asarray(states)[1:] - np.asarray(states)[:-1]).max() > 1e-3  # the state moves
    # A NaN recurrent weight: the step fails with EDGERL_ERR_STATE_NONFINITE, the state stays as it was.
    source = (tmp_path / "c" / "policy.c").read_text()
    start = source.index("{", source.index("net_rnn_l0_whh[")) + 1
    start = source.index("{", start) + 1  # first row of the 2-D table
    poisoned = tmp_path / "nan"
    poisoned.mkdir()
    (poisoned / "policy.h").write_text(header)
    (poisoned / "policy.c").write_text(source[:start] + " NAN," + source[source.index(",", start) + 1:])
    before = np.full(lib.state_size, 0.25, np.float32)
    action, after, rc = _build(poisoned).step(obs[0], before)
    assert rc == 3 and np.array_equal(after, before) and not action.any()


def test_float_literals_past_float32_are_infinite() -> None:
    from edgerl.export.native.emit import _lit

    assert (_lit(1e39), _lit(-1e39), _lit(float("inf")), _lit(-float("inf"))) == (
        "INFINITY", "(-INFINITY)", "INFINITY", "(-INFINITY)")
    assert _lit(0.1) == "0.100000001f" and _lit(2) == "2.0f"

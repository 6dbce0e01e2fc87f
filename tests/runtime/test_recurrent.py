"""Recurrent bundles in the runtime: the state kept inside the Policy, fed back each step, zeroed by
reset() (control loop, episodes), checked finite; the contract's ``recurrent`` section; the pure
parts of the TensorRT backend's state handling. The graphs are written with onnx.helper (no torch)
and checked against a numpy twin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import OPSET, contract, ref_obs
from onnx import TensorProto, helper, numpy_helper

from edgerl.runtime.backends import recurrent_io
from edgerl.runtime.backends.tensorrt import profile_shapes
from edgerl.runtime.contract import parse_contract
from edgerl.runtime.errors import ActionError, BundleError, ObservationError
from edgerl.runtime.loop import ControlLoop
from edgerl.runtime.policy import Policy

OBS, ACT, LAYERS, HID = 3, 2, 2, 4
NAN_TRIGGER = -20.0
"""obs[0] at or below -10 makes the state NaN (log of a negative) while the action stays finite."""


class RecurrentNet:
    """``h' = tanh(obs Wx + h Wh) + 0 * log(obs0 + 10)``, ``c' = c + h'``,
    ``action = tanh(obs Wa + sum_layers(h + c) Wha)``: the action reads the previous state."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.wx = rng.normal(size=(OBS, HID)).astype(np.float32)
        self.wh = (rng.normal(size=(HID, HID)) * 0.5).astype(np.float32)
        self.wa = rng.normal(size=(OBS, ACT)).astype(np.float32)
        self.wha = rng.normal(size=(HID, ACT)).astype(np.float32)

    def step(self, obs: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obs = obs.astype(np.float32)
        with np.errstate(invalid="ignore"):
            h2 = np.tanh(obs @ self.wx + h @ self.wh) + 0 * np.log(obs[:, :1] + 10)
        return np.tanh(obs @ self.wa + (h + c).sum(0) @ self.wha), h2, c + h2

    def sequence(self, obs: np.ndarray) -> np.ndarray:
        h = c = np.zeros((LAYERS, 1, HID), np.float32)
        out = []
        for o in obs:
            a, h, c = self.step(o[None], h, c)
            out.append(a[0])
        return np.asarray(out, np.float32)

    def save(self, path: Path, kind: str = "lstm") -> Path:
        init = [numpy_helper.from_array(v, n) for n, v in (("wx", self.wx), ("wh", self.wh), ("wa", self.wa),
                                                           ("wha", self.wha), ("e0", np.eye(OBS, 1, dtype=np.float32)),
                                                           ("ten", np.array(10.0, np.float32)),
                                                           ("zero", np.array(0.0, np.float32)),
                                                           ("axis0", np.array([0], np.int64)))]
        nodes = [helper.make_node("MatMul", ["obs", "wx"], ["x1"]), helper.make_node("MatMul", ["h_in", "wh"], ["x2"]),
                 helper.make_node("Add", ["x1", "x2"], ["x3"]), helper.make_node("Tanh", ["x3"], ["x4"]),
                 helper.make_node("MatMul", ["obs", "e0"], ["o0"]), helper.make_node("Add", ["o0", "ten"], ["o1"]),
                 helper.make_node("Log", ["o1"], ["o2"]), helper.make_node("Mul", ["o2", "zero"], ["o3"]),
                 helper.make_node("Add", ["x4", "o3"], ["h_out"])]
        state = "h_in"
        if kind == "lstm":
            nodes += [helper.make_node("Add", ["c_in", "h_out"], ["c_out"]),
                      helper.make_node("Add", ["h_in", "c_in"], ["hc"])]
            state = "hc"
        nodes += [helper.make_node("ReduceSum", [state, "axis0"], ["s"], keepdims=0),
                  helper.make_node("MatMul", ["s", "wha"], ["a1"]), helper.make_node("MatMul", ["obs", "wa"], ["a2"]),
                  helper.make_node("Add", ["a1", "a2"], ["a3"]), helper.make_node("Tanh", ["a3"], ["action"])]
        st = [LAYERS, "batch", HID]
        names = ["h", "c"] if kind == "lstm" else ["h"]
        inputs = [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", OBS]),
                  *(helper.make_tensor_value_info(f"{n}_in", TensorProto.FLOAT, st) for n in names)]
        outputs = [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", ACT]),
                   *(helper.make_tensor_value_info(f"{n}_out", TensorProto.FLOAT, st) for n in names)]
        model = helper.make_model(helper.make_graph(nodes, "policy", inputs, outputs, init), opset_imports=OPSET)
        model.ir_version = 9
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
        return path


def recurrent_contract(kind: str = "lstm", **changes) -> dict:
    c = contract(obs_shape=(OBS,), obs_dtype="float32", act_shape=(ACT,), low=[-1.0] * ACT, high=[1.0] * ACT)
    ins = ["h_in", "c_in"] if kind == "lstm" else ["h_in"]
    c["recurrent"] = {"kind": kind, "inputs": ins, "outputs": [n.replace("_in", "_out") for n in ins],
                      "shape": [LAYERS, 1, HID], "batch_axis": 1, "dtype": "float32",
                      "reset": "zeros_at_episode_start", **changes}
    return c


def _obs(n: int = 40, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, OBS)).astype(np.float32)


@pytest.fixture
def net() -> RecurrentNet:
    return RecurrentNet()


@pytest.fixture
def rec_bundle(make_bundle, net, tmp_path):
    obs = _obs()
    return make_bundle(onnx_path=net.save(tmp_path / "rec.onnx"), contract=recurrent_contract(),
                       reference_obs=obs, reference_actions=net.sequence(obs))


def test_state_is_fed_back_and_reset(rec_bundle, net):
    obs = _obs(60, seed=2)
    want = net.sequence(obs)
    with Policy.load(rec_bundle) as p:
        assert p.recurrent
        got = np.asarray([p.act(o) for o in obs])
        assert np.abs(got - want).max() <= 1e-5
        assert np.abs(want[1:] - net.sequence(obs[1:])).max() > 1e-3  # the state matters
        p.reset()
        again = np.asarray([p.act(o) for o in obs[:5]])
        assert np.abs(again - want[:5]).max() <= 1e-5
        with pytest.raises(ObservationError, match="recurrent.*act\\(\\) once per control step"):
            p.act_batch(obs)


def test_non_finite_state_raises_and_is_not_kept(rec_bundle, net):
    obs = _obs(10, seed=3)
    bad = obs[4].copy()
    bad[0] = NAN_TRIGGER
    want = net.sequence(np.delete(obs, 4, axis=0)[:9])
    with Policy.load(rec_bundle) as p:
        got = [p.act(o) for o in obs[:4]]
        with pytest.raises(ActionError, match="non-finite recurrent state 'h_out'.*state not kept"):
            p.act(bad)
        got += [p.act(o) for o in obs[5:10]]
    assert np.abs(np.asarray(got) - want).max() <= 1e-5  # as if the failed step had never happened


def test_reference_must_be_the_fed_back_sequence(make_bundle, net, tmp_path):
    obs = _obs()
    stateless = np.asarray([net.step(o[None], *[np.zeros((LAYERS, 1, HID), np.float32)] * 2)[0][0] for o in obs])
    with pytest.raises(BundleError, match="reference check failed"):
        make_bundle(onnx_path=net.save(tmp_path / "rec.onnx"), contract=recurrent_contract(),
                    reference_obs=obs, reference_actions=stateless)


def _sequence_with_starts(net: RecurrentNet, obs: np.ndarray, starts: np.ndarray) -> np.ndarray:
    cuts = [*np.flatnonzero(starts), len(obs)]
    return np.concatenate([net.sequence(obs[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)])


def test_reference_resets_where_it_says_an_episode_starts(make_bundle, net, tmp_path):
    obs = _obs()
    starts = np.zeros(len(obs), bool)
    starts[[0, 13, 29]] = True
    want = _sequence_with_starts(net, obs, starts)
    assert np.abs(want - net.sequence(obs)).max() > 1e-3  # the resets change the actions
    onnx_path = net.save(tmp_path / "rec.onnx")
    bundle = make_bundle(onnx_path=onnx_path, contract=recurrent_contract(), reference_obs=obs,
                         reference_actions=want, reference_starts=starts)
    with np.load(bundle / "reference.npz") as z:
        assert np.array_equal(z["start"], starts)
    with Policy.load(bundle) as p:  # the load check passed with the resets; the state is zero after it
        assert np.abs(np.asarray([p.act(o) for o in obs[:5]]) - want[:5]).max() <= 1e-5
    with pytest.raises(BundleError, match="reference check failed"):  # the same actions read as one episode
        make_bundle(onnx_path=onnx_path, contract=recurrent_contract(), reference_obs=obs, reference_actions=want)
    for bad, where in ((starts.astype(np.int8), "recurrent contract"), (starts[:-1], "recurrent contract")):
        with pytest.raises(BundleError, match=f"reference_starts must be a bool array \\[40\\].*{where}"):
            make_bundle(onnx_path=onnx_path, contract=recurrent_contract(), reference_obs=obs,
                        reference_actions=want, reference_starts=bad)
    n = len(ref_obs())
    with pytest.raises(BundleError, match=f"only for a recurrent contract; got bool \\[{n}\\] for a feed-forward"):
        make_bundle(reference_starts=np.eye(1, n, dtype=bool)[0])


def test_malformed_reference_starts_are_refused_on_the_robot(rec_bundle):
    from edgerl.runtime.contract import read_contract
    from edgerl.runtime.policy import _read_reference

    contract = read_contract(rec_bundle / "contract.json")
    with np.load(rec_bundle / "reference.npz") as z:
        obs, act = z["obs"], z["action"]
    for start in (np.ones(len(obs), np.float32), np.ones(len(obs) + 1, bool)):
        path = rec_bundle.parent / "ref.npz"
        np.savez(path, obs=obs, action=act, start=start)
        with pytest.raises(BundleError, match="'start' must be bool \\[40\\] in a recurrent bundle"):
            _read_reference(path, contract)
    np.savez(path, obs=obs, action=act)  # older bundles: no flags, one episode
    assert _read_reference(path, contract)[2] is None


def test_graph_and_contract_must_agree(make_bundle, mlp, net, tmp_path):
    obs = _obs()
    with pytest.raises(BundleError, match="graph has state \\['h_in', 'c_in'\\].*contract.json has no recurrent"):
        make_bundle(onnx_path=net.save(tmp_path / "rec.onnx"),
                    contract=contract(obs_shape=(OBS,), obs_dtype="float32", act_shape=(ACT,), low=[-1.0] * ACT,
                                      high=[1.0] * ACT), reference_obs=obs, reference_actions=net.sequence(obs))
    with pytest.raises(BundleError, match="graph has state \\['h_in'\\].*contract.json has recurrent lstm"):
        make_bundle(onnx_path=net.save(tmp_path / "gru.onnx", kind="gru"), contract=recurrent_contract(),
                    reference_obs=obs, reference_actions=net.sequence(obs))


def test_gru_graph_runs(make_bundle, net, tmp_path):
    obs = _obs()
    h = np.zeros((LAYERS, 1, HID), np.float32)
    want = []
    for o in obs:  # a GRU-named graph: the action reads h only
        a, h, _ = net.step(o[None], h, np.zeros_like(h))
        want.append(a[0])
    bundle = make_bundle(onnx_path=net.save(tmp_path / "gru.onnx", kind="gru"), contract=recurrent_contract("gru"),
                         reference_obs=obs, reference_actions=np.asarray(want))
    with Policy.load(bundle) as p:
        assert p.backend.state_inputs == ("h_in",) and p.backend.state_shape == (LAYERS, 1, HID)


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


def test_loop_resets_at_run_and_new_episode(rec_bundle, net):
    obs = _obs(12, seed=4)
    with Policy.load(rec_bundle) as p:
        p.act(obs[0])  # a stale state: run() must start from zeros
        served = iter(range(100))
        sent: list = []
        clock = _Clock()

        def read_obs() -> np.ndarray:
            i = next(served)
            if i == 3:
                loop.new_episode()  # e.g. the robot's reset handler: takes effect at the next tick
            return obs[i]

        loop = ControlLoop(p, read_obs, sent.append, rate_hz=50, max_steps=6, clock=clock, sleep=clock.sleep)
        summary = loop.run()
    assert summary.fallbacks == 0
    want = np.concatenate([net.sequence(obs[:4]), net.sequence(obs[4:6])])
    assert np.abs(np.asarray(sent) - want).max() <= 1e-5
    assert np.abs(np.asarray(sent[4:]) - net.sequence(obs[:6])[4:]).max() > 1e-3  # the reset changed them


@pytest.mark.parametrize("changes,message", [
    ({"kind": "rnn"}, "recurrent.kind"),
    ({"inputs": ["c_in", "h_in"]}, "recurrent.inputs"),
    ({"outputs": ["h_out"]}, "recurrent.outputs"),
    ({"shape": [2, 3, 4]}, "recurrent.shape"),
    ({"shape": [2, 1]}, "recurrent.shape"),
    ({"shape": [2, 1, 1 << 30]}, "recurrent.shape"),
    ({"batch_axis": 0}, "recurrent.batch_axis"),
    ({"dtype": "float16"}, "recurrent.dtype"),
    ({"reset": "never"}, "recurrent.reset"),
    ({"extra": 1}, "recurrent must be an object with exactly"),
])
def test_malformed_recurrent_section_is_one_line(changes, message):
    with pytest.raises(BundleError, match=message) as e:
        parse_contract(recurrent_contract(**changes))
    assert "\n" not in str(e.value)
    with pytest.raises(BundleError, match="recurrent must be an object"):
        parse_contract({**recurrent_contract(), "recurrent": ["lstm"]})
    assert parse_contract(recurrent_contract()).recurrent.shape == (LAYERS, 1, HID)


def test_tensorrt_state_io_pure_parts():
    """The TensorRT backend's pure helpers: I/O names in any engine order, and an optimization
    profile per input with the batch on its own axis (state: axis 1)."""
    assert recurrent_io(["c_in", "obs", "h_in"], ["h_out", "action", "c_out"], "p.onnx") == \
        ("obs", "action", ("h_in", "c_in"), ("h_out", "c_out"))
    assert recurrent_io(["x"], ["y"], "p.onnx") == ("x", "y", (), ())
    with pytest.raises(BundleError, match="expected one input 'obs'"):
        recurrent_io(["obs", "h_in", "c_in"], ["action", "h_out"], "p.onnx")
    assert profile_shapes((-1, 11), 8) == ((1, 11), (1, 11), (8, 11))
    assert profile_shapes((2, -1, 16), 8) == ((2, 1, 16), (2, 1, 16), (2, 8, 16))
    with pytest.raises(BundleError, match="exactly one dynamic"):
        profile_shapes((2, 3), 8)


def test_observation_ranges_from_io_terms(make_bundle):
    """The io terms' plausible ranges: act() and act_batch() name the term and element that leaves its range."""
    from conftest import OBS_DIM, ref_obs

    c = contract()
    c["io"] = {"observation": {"terms": [
        {"name": "joint_pos", "size": 4, "unit": "rad", "scale": 1.0, "low": -3.2, "high": 3.2},
        {"name": "vel", "size": OBS_DIM - 5, "unit": "m/s", "scale": 1.0, "high": [5.0] * (OBS_DIM - 5)},
        {"name": "phase", "size": 1, "unit": None, "scale": 1.0}]}}
    obs = ref_obs() * 10  # reference observations may leave the ranges: the reference check does not apply them
    with Policy.load(make_bundle(contract=c, reference_obs=obs)) as p:
        ok = np.zeros(OBS_DIM)
        p.act(ok)
        bad = ok.copy()
        bad[3] = 41.2
        with pytest.raises(ObservationError, match=r"observation term joint_pos\[3\] = 41.2 outside its io range "
                                                   r"\[-3.2, 3.2\] rad: wrong observation order or units\?"):
            p.act(bad)
        bad = ok.copy()
        bad[4 + 2] = 7.0
        with pytest.raises(ObservationError, match=r"vel\[2\] = 7 outside its io range \[-inf, 5\] m/s"):
            p.act(bad)
        ok[-1] = 1e5  # a term without a range is not checked
        p.act(ok)
        with pytest.raises(ObservationError, match=r"joint_pos\[0\] = -4 \(sample 1\)"):
            p.act_batch(np.stack([np.zeros(OBS_DIM), np.full(OBS_DIM, -4.0)]))


def test_ranges_that_exclude_zero_do_not_break_loading_checking_or_running(make_bundle, tmp_path):
    """Warm-up, the reference check and ``edgerl_runtime check`` use the (random) reference
    observations, which may leave the io ranges; a robot's own observations are checked."""
    from conftest import OBS_DIM, ref_obs

    from edgerl.commands.run import run_bundle
    from edgerl.runtime.cli import check

    c = contract()
    c["io"] = {"observation": {"terms": [{"name": "height", "size": 1, "unit": "m", "scale": 1.0, "low": 0.2, "high": 5.0},
                                         {"name": "rest", "size": OBS_DIM - 1, "unit": None, "scale": 1.0}]}}
    bundle = make_bundle(contract=c, reference_obs=ref_obs() - 3.0)  # every reference obs is out of range
    assert check(bundle, None, 10, verify=False)["latency"]["count"] == 10
    with Policy.load(bundle) as p:
        with pytest.raises(ObservationError, match=r"height = 0 outside its io range \[0.2, 5\] m"):
            p.act(np.zeros(OBS_DIM))
        with p.unchecked_ranges():
            p.act(np.zeros(OBS_DIM))
        p.act(np.ones(OBS_DIM))  # the check is back on, and a plausible observation passes
        with pytest.raises(ObservationError, match="outside its io range"):
            p.act(np.zeros(OBS_DIM))
    # edgerl run on an env whose observations are in range (Hopper's torso height is ~1.25 m).
    result = run_bundle(bundle, env="Hopper-v5", episodes=1, max_steps=20)
    assert len(result["runtime_returns"]) == 1 and np.isfinite(result["runtime_returns"]).all()


@pytest.mark.parametrize("term,message", [
    ({"low": [1.0, 2.0]}, "must be one finite number or 4 of them"),
    ({"low": float("nan")}, "must be one finite number"),
    ({"high": "3"}, "must be one finite number"),
    ({"low": 1.0, "high": [2.0, 2.0, 0.5, 2.0]}, r"low\[2\] = 1 is not below high\[2\] = 0.5"),
])
def test_malformed_observation_range_is_one_line(term, message):
    c = contract()
    c["io"] = {"observation": {"terms": [{"name": "q", "size": 4, "unit": "rad", "scale": 1.0, **term},
                                         {"name": "rest", "size": 7, "unit": None, "scale": 1.0}]}}
    with pytest.raises(BundleError, match=message) as e:
        parse_contract(c)
    assert "\n" not in str(e.value)

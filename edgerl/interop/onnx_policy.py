"""``--from onnx``: a policy exported by anyone, wrapped with a contract from ``--io`` / ``--env``.

No torch policy can be rebuilt from an arbitrary graph, so the result is what ``edgerl export``
writes (``policy.onnx`` + ``contract.json``, which ``edgerl bench`` takes) or, with a target, a
deploy bundle (which ``edgerl run`` and the on-robot runtime take). Compaction and distillation
need a torch policy: import the library's checkpoint instead.

The graph must have one input ``[batch, *obs_shape]`` (float32 or uint8) and one output
``[batch, *act_shape]`` (float32, or an integer index for a discrete policy). Its tensors are
renamed ``obs``/``action`` (the contract's names); what ``--io`` describes and the graph lacks is
appended as ONNX nodes: observation scale and normaliser before, action clip -> scale -> offset
after. The result is checked with ``onnx.checker`` and against the original graph in ONNX Runtime.

A recurrent graph (Isaac Lab's exporter: ``obs, h_in[, c_in] -> actions, h_out[, c_out]``) takes
its state beside the observation and returns the next one beside the action. ``--io``'s
``recurrent`` section names the pairs; they are renamed ``h_in/h_out[, c_in/c_out]`` and the
contract gets the ``recurrent`` section edgerl's own recurrent exports carry, so the runtime feeds
the state back and zeros it at episode start. Each state tensor must be float32 ``[layers, batch,
hidden]`` (batch dynamic or 1). The check then runs both graphs as a sequence with episode starts,
the state fed back by hand into the original.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgerl.errors import ConfigError
from edgerl.interop.common import ImportLayoutError, box_space
from edgerl.interop.io import IODescription, RecurrentIO, check_widths
from edgerl.runtime.contract import state_io_names
from edgerl.runtime.fileio import atomic_write_bytes, atomic_write_text, sha256_file

MIN_OPSET = 8
"""Min/Max with broadcasting (the element-wise clip) need ai.onnx opset 8."""
CHECK_OBS = 256
REFERENCE_OBS = 128
"""Observations of a bundle's reference written by ``--target`` (a recurrent stream resets inside them)."""


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ConfigError("--from onnx needs onnx: pip install 'edgerl[train]'") from None
    return onnx


def _tensor_names(graph: Any) -> set[str]:
    names = {vi.name for vi in [*graph.input, *graph.output, *graph.value_info]}
    names |= {t.name for t in graph.initializer}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def _rename(graph: Any, old: str, new: str) -> None:
    """Rename tensor ``old`` to ``new``; a different tensor already called ``new`` is renamed aside."""
    if old == new:
        return
    if new in _tensor_names(graph):
        _rename(graph, new, f"{new}_orig_{len(_tensor_names(graph))}")
    for t in graph.initializer:
        if t.name == old:
            t.name = new
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        if vi.name == old:
            vi.name = new


def _dims(vi: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]


@dataclass(frozen=True)
class _State:
    """A recurrent graph's state tensors (``--io`` ``recurrent``) and the names the contract gives them."""

    kind: str
    """The contract's kind: ``lstm`` (two state tensors) or ``gru`` (one)."""
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    layers: int
    hidden: int

    @property
    def new_inputs(self) -> tuple[str, ...]:
        return state_io_names(self.kind)[0]

    @property
    def new_outputs(self) -> tuple[str, ...]:
        return state_io_names(self.kind)[1]


def _split(src: Path, inputs: list[Any], outputs: list[Any], rec: RecurrentIO | None
           ) -> tuple[Any, Any, _State | None]:
    """``(observation input, action output, state)`` of the graph, as ``--io`` describes it."""
    ins, outs = [vi.name for vi in inputs], [vo.name for vo in outputs]
    if rec is None:
        if len(inputs) != 1 or len(outputs) != 1:
            raise ImportLayoutError(
                f"{src}: the graph has inputs {ins} and outputs {outs}; edgerl wraps one observation input and one "
                "action output. If the others are a recurrent state, name the pairs in --io: recurrent: {state: "
                "[{input: h_in, output: h_out}], reset: zeros_at_episode_start}")
        return inputs[0], outputs[0], None
    for key, names, graph_names in (("input", rec.inputs, ins), ("output", rec.outputs, outs)):
        missing = [n for n in names if n not in graph_names]
        if missing:
            raise ConfigError(f"--io recurrent.state names {key}s {missing} but the graph's {key}s are {graph_names}")
    obs = [vi for vi in inputs if vi.name not in rec.inputs]
    act = [vo for vo in outputs if vo.name not in rec.outputs]
    if len(obs) != 1 or len(act) != 1:
        raise ImportLayoutError(f"{src}: besides the state --io names, the graph has inputs {[v.name for v in obs]} "
                                f"and outputs {[v.name for v in act]}; edgerl wraps one observation input and one "
                                "action output")
    by_name = {vi.name: vi for vi in [*inputs, *outputs]}
    shapes = set()
    for i, o in zip(rec.inputs, rec.outputs, strict=True):
        for name in (i, o):
            vi, dims = by_name[name], _dims(by_name[name])
            elem = _onnx().helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
            if elem != np.float32 or len(dims) != 3 or dims[0] is None or dims[2] is None or dims[1] not in (None, 1):
                raise ImportLayoutError(f"{src}: state {name} is {elem}{_shown(dims)}; the runtime feeds float32 "
                                        "[layers, batch, hidden] states (batch dynamic or 1)")
        di, do = _dims(by_name[i]), _dims(by_name[o])
        if (di[0], di[2]) != (do[0], do[2]):
            raise ConfigError(f"--io recurrent.state pairs {i} {_shown(di)} with {o} {_shown(do)}: a state output must "
                              "have its input's shape")
        shapes.add((di[0], di[2]))
    if len(shapes) != 1:
        raise ImportLayoutError(f"{src}: state tensors {list(rec.inputs)} have different [layers, hidden] "
                                f"{sorted(shapes)}; the contract holds one state shape")
    (layers, hidden), = shapes
    kind = "lstm" if len(rec.inputs) == 2 else "gru"
    return obs[0], act[0], _State(kind, rec.inputs, rec.outputs, int(layers), int(hidden))


def _shown(dims: list[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


class _Chain:
    """The pre/post steps appended to the graph, also applied in numpy for the check."""

    def __init__(self, io: IODescription | None, obs_dim: int, act_dim: int, discrete: bool):
        self.pre: list[tuple[str, np.ndarray]] = []
        self.post: list[tuple[str, np.ndarray]] = []
        if io is None:
            return
        scale = io.obs_scale()
        if scale is not None:
            self.pre.append(("Mul", scale.astype(np.float32)))
        if io.normalizer is not None:
            n = io.normalizer
            denom = np.sqrt(n["var"]) + n["eps"] if n["formula"] == "std" else np.sqrt(n["var"] + n["eps"])
            self.pre += [("Sub", n["mean"].astype(np.float32)), ("Div", denom.astype(np.float32))]
            if np.isfinite(n["clip"]):
                self.pre += [("Max", np.full(obs_dim, -n["clip"], np.float32)),
                             ("Min", np.full(obs_dim, n["clip"], np.float32))]
        if discrete:
            return
        if io.clip_low is not None:
            self.post += [("Max", np.broadcast_to(np.float32(io.clip_low), act_dim).astype(np.float32)),
                          ("Min", np.broadcast_to(np.float32(io.clip_high), act_dim).astype(np.float32))]
        if io.scale is not None:
            self.post.append(("Mul", np.broadcast_to(np.float32(io.scale), act_dim).astype(np.float32)))
        if io.offset is not None:
            self.post.append(("Add", np.broadcast_to(np.float32(io.offset), act_dim).astype(np.float32)))

    @staticmethod
    def apply(steps: list[tuple[str, np.ndarray]], x: np.ndarray) -> np.ndarray:
        ops = {"Mul": np.multiply, "Sub": np.subtract, "Div": np.divide, "Max": np.maximum, "Min": np.minimum,
               "Add": np.add}
        for op, value in steps:
            x = ops[op](x, value).astype(np.float32)
        return x

    def bounds(self, act_dim: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = np.full(act_dim, -np.inf), np.full(act_dim, np.inf)
        for op, v in self.post:
            v = v.astype(np.float64)
            if op == "Max":
                lo = np.maximum(lo, v)
            elif op == "Min":
                hi = np.minimum(hi, v)
            elif op == "Mul":
                lo, hi = np.minimum(lo * v, hi * v), np.maximum(lo * v, hi * v)
            elif op == "Add":
                lo, hi = lo + v, hi + v
        return np.nan_to_num(lo, nan=-np.inf), np.nan_to_num(hi, nan=np.inf)


def _append(onnx: Any, graph: Any, steps: list[tuple[str, np.ndarray]], src: str, dst: str, tag: str) -> None:
    """Nodes ``src -> op(., const) -> ... -> dst``; ``src`` is renamed to feed the first node."""
    from onnx import helper, numpy_helper

    names = [src, *(f"edgerl_{tag}_{i}" for i in range(len(steps) - 1)), dst]
    for i, (op, value) in enumerate(steps):
        const = f"edgerl_{tag}_const_{i}"
        graph.initializer.append(numpy_helper.from_array(value, const))
        graph.node.append(helper.make_node(op, [names[i], const], [names[i + 1]], name=f"edgerl_{tag}_{op}_{i}"))


def _wrap(model: Any, chain: _Chain, in_name: str, out_name: str, state: _State | None) -> Any:
    """Rename the graph's tensors and append the chain's nodes (the model is modified in place)."""
    onnx = _onnx()
    graph = model.graph
    if state is not None:  # first, so that obs/action renames cannot take a state's new name
        for old, new in zip((*state.inputs, *state.outputs), (*state.new_inputs, *state.new_outputs), strict=True):
            _rename(graph, old, new)
    in_vi = next(vi for vi in graph.input if vi.name == in_name)
    out_vi = next(vo for vo in graph.output if vo.name == out_name)
    _rename(graph, in_vi.name, "obs_raw_in" if chain.pre else "obs")
    _rename(graph, out_vi.name, "action_raw_out" if chain.post else "action")
    if chain.pre:  # a new graph input "obs" feeding the pre chain, whose end is the old input
        new_in = onnx.helper.make_tensor_value_info("obs", in_vi.type.tensor_type.elem_type, None)
        new_in.type.CopyFrom(in_vi.type)
        _append(onnx, graph, chain.pre, "obs", "obs_raw_in", "pre")
        nodes = list(graph.node)
        pre = [n for n in nodes if n.name.startswith("edgerl_pre_")]
        del graph.node[:]
        graph.node.extend([*pre, *(n for n in nodes if not n.name.startswith("edgerl_pre_"))])
        graph.input.remove(in_vi)
        graph.input.insert(0, new_in)
    if chain.post:
        new_out = onnx.helper.make_tensor_value_info("action", out_vi.type.tensor_type.elem_type, None)
        new_out.type.CopyFrom(out_vi.type)
        _append(onnx, graph, chain.post, "action_raw_out", "action", "post")
        graph.output.remove(out_vi)
        graph.output.insert(0, new_out)
    if state is not None:  # the contract's order: obs, state inputs -> action, state outputs
        _order(graph.input, ["obs", *state.new_inputs])
        _order(graph.output, ["action", *state.new_outputs])
    return model


def _order(values: Any, first: list[str]) -> None:
    """Put ``first`` (names) at the front of a repeated ValueInfo field, in that order."""
    items = [v for v in values]
    ordered = [*(next(v for v in items if v.name == n) for n in first), *(v for v in items if v.name not in first)]
    copies = []
    for v in ordered:
        c = type(v)()
        c.CopyFrom(v)
        copies.append(c)
    del values[:]
    values.extend(copies)


def _session(model_bytes: bytes) -> Any:
    from edgerl.export.checks import ort_session

    return ort_session(model_bytes)


def import_onnx(src: str | os.PathLike, out_dir: str | os.PathLike, *, io: IODescription | None = None,
                env_id: str | None = None, target: str | None = None, force: bool = False,
                seed: int = 0) -> dict[str, Any]:
    """Wrap ``src`` as ``out_dir/policy.onnx`` + ``contract.json`` (a bundle when ``target`` is given).

    Raises:
        ImportLayoutError: Not a single-input single-output policy graph, or the checks failed.
        ConfigError: ``--io``/``--env`` disagree with the graph's widths, or a needed fact is missing.
    """
    onnx = _onnx()
    src = Path(src)
    try:
        model = onnx.load(str(src), load_external_data=False)
    except FileNotFoundError:
        raise ConfigError(f"{src}: no such file") from None
    except Exception as e:  # protobuf decode errors
        raise ImportLayoutError(f"{src}: not an ONNX model ({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})") from None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:
        raise ImportLayoutError(f"{src}: onnx.checker rejects it ({str(e).strip().splitlines()[0][:200]})") from None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise ImportLayoutError(f"{src}: weights in external data files; save it as one file")
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    init_names = {t.name for t in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in init_names]
    in_vi, out_vi, state = _split(src, inputs, list(model.graph.output), io.recurrent if io is not None else None)
    in_dims, out_dims = _dims(in_vi), _dims(out_vi)
    if len(in_dims) < 2 or any(d is None for d in in_dims[1:]):
        raise ImportLayoutError(f"{src}: input {in_vi.name} has shape {in_dims}; expected [batch, *obs_shape] "
                                "with fixed observation dims")
    obs_shape = [int(d) for d in in_dims[1:]]
    in_type = onnx.helper.tensor_dtype_to_np_dtype(in_vi.type.tensor_type.elem_type)
    out_type = onnx.helper.tensor_dtype_to_np_dtype(out_vi.type.tensor_type.elem_type)
    if in_type not in (np.float32, np.uint8):
        raise ImportLayoutError(f"{src}: input {in_vi.name} is {in_type}; edgerl feeds float32 or uint8")
    discrete = out_type.kind in "iu"
    act_shape = [] if discrete else [int(d) for d in out_dims[1:] if d is not None]
    if not discrete and (len(out_dims) != 2 or out_dims[1] is None or out_type != np.float32):
        raise ImportLayoutError(f"{src}: output {out_vi.name} is {out_type}{out_dims}; expected float32 [batch, "
                                "act_dim] or an integer index [batch]")
    obs_dim, act_dim = int(np.prod(obs_shape)), int(np.prod(act_shape)) if act_shape else 1

    env = None
    if env_id:
        from edgerl.envs import make_env, space_env_info

        gym_env = make_env(env_id)
        try:
            env = space_env_info(gym_env)
        finally:
            gym_env.close()
        if env["observation_space"]["shape"] != obs_shape:
            raise ConfigError(f"{env_id} observes {env['observation_space']['shape']} but the graph takes {obs_shape}")
        act_space = env["action_space"]
        if discrete != (act_space["kind"] == "discrete") or (not discrete and act_space["shape"] != act_shape):
            raise ConfigError(f"{env_id} has action space {act_space['kind']} {act_space['shape']} but the graph "
                              f"outputs {'an index' if discrete else act_shape}")
    if io is not None:
        if io.terms and len(obs_shape) != 1:
            raise ConfigError("--io observation terms describe vector observations; the graph takes "
                              f"{obs_shape}")
        check_widths(io, obs_dim, act_dim, "--io")
        if discrete and any(v is not None for v in (io.clip_low, io.scale, io.offset)):
            raise ConfigError("--io action clip/scale/offset do not apply to a discrete (index) output")
    if discrete and env is None:
        raise ConfigError(f"{src} outputs a discrete action index; pass --env so the contract knows how many")
    if opset < MIN_OPSET:
        raise ImportLayoutError(f"{src}: opset {opset}; edgerl appends nodes that need opset >= {MIN_OPSET}")

    chain = _Chain(io, obs_dim, act_dim, discrete)
    original_bytes = model.SerializeToString()
    orig_names = (in_vi.name, out_vi.name, *(() if state is None else (state.inputs, state.outputs)))
    wrapped = _wrap(model, chain, in_vi.name, out_vi.name, state)
    try:
        onnx.checker.check_model(wrapped, full_check=True)
    except Exception as e:
        raise ImportLayoutError(f"{src}: the wrapped graph fails onnx.checker ({str(e).splitlines()[0][:200]}); "
                                "please report it") from None
    wrapped_bytes = wrapped.SerializeToString()

    # Check in ONNX Runtime: wrapped graph == chain applied around the original graph.
    from edgerl.envs import random_observations

    obs_space = env["observation_space"] if env else box_space(obs_shape, dtype=str(np.dtype(in_type)))
    rng = np.random.default_rng(seed)
    obs = random_observations(obs_space, CHECK_OBS, rng).astype(in_type)
    orig, new = _session(original_bytes), _session(wrapped_bytes)
    if state is None:
        batch_ok = in_dims[0] is None
        rows = [obs[i:i + 1] for i in range(len(obs))] if not batch_ok else [obs]
        got = np.concatenate([new.run(["action"], {"obs": r})[0] for r in rows])
        ref = np.concatenate([chain.apply(chain.post, orig.run([orig_names[1]], {orig_names[0]: chain.apply(
            chain.pre, r) if chain.pre else r})[0]) for r in rows])
        got_states: list[np.ndarray] = []
        ref_states: list[np.ndarray] = []
    else:
        from edgerl.export.checks import stream_starts

        starts = stream_starts(len(obs))
        got, got_states, ref, ref_states = _check_stream(src, orig, new, obs, starts, chain, state, orig_names)
    if discrete:
        ok = np.array_equal(got, ref)
        gap = float((got != ref).mean())
    else:
        gap = float(np.abs(got.astype(np.float64) - ref).max(initial=0.0))
        ok = bool(np.all(np.isfinite(got))) and gap <= 1e-5
    for g, r in zip(got_states, ref_states, strict=True):
        state_gap = float(np.abs(g.astype(np.float64) - r).max(initial=0.0))
        ok = ok and bool(np.all(np.isfinite(g))) and state_gap <= 1e-5
        gap = max(gap, state_gap) if not discrete else gap
    if not ok:
        raise ImportLayoutError(f"{src}: the wrapped graph differs from the original by {gap:.3g} in ONNX Runtime "
                                "(or gives non-finite actions); please report it")

    contract = _contract(src, obs_space, env, discrete, act_shape, chain, io, opset, state)
    out = Path(out_dir)
    if target is None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "policy.onnx", wrapped_bytes)
        import json

        atomic_write_text(out / "contract.json", json.dumps(contract, indent=2) + "\n")
    else:
        import tempfile

        from edgerl.runtime.bundle import write_bundle
        from edgerl.runtime.profile import load_profile

        with tempfile.TemporaryDirectory(prefix="edgerl-import-") as tmp:
            onnx_path = Path(tmp) / "policy.onnx"
            atomic_write_bytes(onnx_path, wrapped_bytes)
            n = REFERENCE_OBS
            write_bundle(out, onnx_path, contract, obs[:n], got[:n], load_profile(target), overwrite=force,
                         reference_starts=None if state is None else starts[:n])
    return {"output": str(out), "obs_shape": obs_shape, "action": "index" if discrete else act_shape,
            "recurrent": None if state is None else {"kind": state.kind, "state": list(state.new_inputs),
                                                     "shape": [state.layers, 1, state.hidden]},
            "baked_in": contract["baked_in"], "max_abs_diff": gap, "checked_obs": len(obs), "opset": opset,
            "bundle": target is not None}


def _check_stream(src: Path, orig: Any, new: Any, obs: np.ndarray, starts: np.ndarray, chain: _Chain, state: _State,
                  orig_names: tuple[Any, ...]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """Both graphs over ``obs`` as one stream with episode ``starts`` ([T] bool), the original's state
    fed back by hand: ``(actions, states)`` of the wrapped graph, then of the chain around the original."""
    from edgerl.export.checks import run_state_stream

    seq = obs[:, None]  # [T, 1, ...]: one stream at the control loop's batch of 1
    try:
        got, got_states = run_state_stream(new, seq, starts[:, None], ("obs", "action", state.new_inputs, state.new_outputs),
                                           state.layers, state.hidden)
        ref, ref_states = run_state_stream(orig, chain.apply(chain.pre, seq) if chain.pre else seq, starts[:, None],
                                           orig_names, state.layers, state.hidden)  # type: ignore[arg-type]
    except Exception as e:  # ORT raises its own exception types
        raise ImportLayoutError(f"{src}: ONNX Runtime cannot run the graph with the state --io names fed back "
                                f"({str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__})"
                                ) from None
    want = (state.layers, 1, state.hidden)
    bad = [(n, list(s.shape[1:])) for n, s in zip(state.outputs, ref_states, strict=True) if s.shape[1:] != want]
    if bad:
        raise ConfigError(f"--io recurrent.state: the graph returns {bad} for states fed in as {list(want)}; a state "
                          "output must have its input's shape")
    ref = chain.apply(chain.post, ref) if chain.post else ref
    return got[:, 0], got_states, ref[:, 0], ref_states


def _contract(src: Path, obs_space: dict[str, Any], env: dict[str, Any] | None, discrete: bool,
              act_shape: list[int], chain: _Chain, io: IODescription | None, opset: int,
              state: _State | None = None) -> dict[str, Any]:
    from edgerl.checkpoint import library_versions
    from edgerl.export.contract import recurrent_section
    from edgerl.runtime.contract import CONTRACT_FORMAT, CONTRACT_VERSION, parse_contract

    if discrete:
        action = {"name": "action", "shape": [], "dtype": "int64", "discrete": True,
                  "n": int(env["action_space"]["n"]), "low": None, "high": None}  # type: ignore[index]
    else:
        lo, hi = chain.bounds(int(np.prod(act_shape)))
        if env is not None and not chain.post:
            lo = np.array([-np.inf if v is None else v for v in env["action_space"]["low"]])
            hi = np.array([np.inf if v is None else v for v in env["action_space"]["high"]])

        def bound(v: np.ndarray) -> list | None:
            return None if not np.isfinite(v).any() else [float(x) if np.isfinite(x) else None for x in v]

        action = {"name": "action", "shape": act_shape, "dtype": "float32", "discrete": False, "n": None,
                  "low": bound(lo), "high": bound(hi)}
    pre = [op for op, _ in chain.pre]
    baked = (["observation_scale"] if io is not None and io.obs_scale() is not None else []) + \
        (["observation_normalizer"] if "Sub" in pre else []) + ["imported_onnx_graph"]
    post = [op for op, _ in chain.post]
    baked += (["action_clip"] if "Max" in post else []) + (["action_scale"] if "Mul" in post else []) + \
        (["action_offset"] if "Add" in post else [])
    versions = library_versions()
    contract: dict[str, Any] = {
        "format": CONTRACT_FORMAT, "version": CONTRACT_VERSION,
        "observation": {"name": "obs", "shape": list(obs_space["shape"]), "dtype": str(np.dtype(obs_space["dtype"])),
                        "low": _null_bounds(obs_space.get("low")), "high": _null_bounds(obs_space.get("high")),
                        "names": None},
        "action": action, "baked_in": baked, "precision": "fp32",
        "source": {"checkpoint": str(src), "sha256": sha256_file(src), "algo": "onnx",
                   "env_id": env["id"] if env else "unknown", "kind": "import:onnx", "steps": None},
        "versions": {**{k: versions[k] for k in ("edgerl", "onnx", "onnxruntime") if k in versions}, "opset": opset},
    }
    if io is not None and io.contract_section():
        contract["io"] = io.contract_section()
    if state is not None:
        contract["recurrent"] = recurrent_section(state.kind, state.layers, state.hidden)
    parse_contract(contract, source="contract of the imported ONNX policy")
    return contract


def _null_bounds(values: list | None) -> list | None:
    if values is None or all(v is None for v in values):
        return None
    return list(values)

"""``export_c``: checkpoint -> checked ``policy.h`` + ``policy.c`` (``edgerl export --format c``)."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import edgerl
from edgerl.checkpoint import checkpoint_file, library_versions, load_checkpoint
from edgerl.errors import ConfigError
from edgerl.export.checks import FP32_ATOL, _continuous_gap, _discrete_gap, stream_starts
from edgerl.export.contract import build_contract
from edgerl.export.errors import ExportCheckError
from edgerl.export.native.emit import Meta, emit
from edgerl.export.native.ir import Program, run_program, step_program
from edgerl.export.native.lower import NativeExportError, lower_policy
from edgerl.export.observations import obs_space, policy_obs_stats, random_observations
from edgerl.export.policy import policy_from_checkpoint
from edgerl.export.wrappers import ArgmaxPolicy, DeployedPolicy
from edgerl.runtime.backends.c import (
    CFLAGS,
    HEADER,
    SOURCE,
    STRICT_FLAGS,
    NativePolicy,
    compile_c,
    find_compiler,
)
from edgerl.runtime.fileio import atomic_write_text, sha256_file

CHECK_OBS = 1024
"""Random observations the lowered program and the compiled code are checked on."""


@dataclass
class CExportReport:
    """What ``export_c`` wrote and checked (``to_dict`` is the ``--json`` output)."""

    header_path: str
    source_path: str
    algo: str
    env_id: str
    checkpoint: str
    sha256: str
    obs_dim: int
    act_dim: int
    discrete: bool
    params: int
    macs: int
    layers: list[str]
    max_abs_diff: dict[str, float]
    """Largest gap to the torch policy per check (``ir``: numpy run of the layer list; ``compiled``)."""
    checks: list[str] = field(default_factory=list)
    compiler: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """A short human-readable report."""
        kind = f"{self.act_dim} discrete actions" if self.discrete else f"{self.act_dim} continuous actions"
        lines = [f"exported {self.algo} policy for {self.env_id} as C99",
                 f"  files      {self.header_path}, {self.source_path}",
                 f"  io         obs float[{self.obs_dim}] -> {kind}",
                 f"  size       {self.params:,} constants ({self.params * 4 / 1024:.1f} KiB), {self.macs:,} MACs per call",
                 f"  layers     {' -> '.join(self.layers)}",
                 "  parity     " + ", ".join(f"{k} max |diff| {v:.2e}" for k, v in self.max_abs_diff.items())
                 + f" vs torch on {CHECK_OBS} obs",
                 f"  checks     passed: {', '.join(self.checks)}",
                 f"  time       {self.seconds:.2f}s"]
        return "\n".join(lines + [f"  note       {n}" for n in self.notes])


def _gap(policy: DeployedPolicy, obs: np.ndarray, got: np.ndarray, what: str, ref: np.ndarray | None = None) -> float:
    """Largest gap to torch (``ref``, else the policy on ``obs``), or ExportCheckError past the ONNX
    export's fp32 tolerance."""
    if ref is None:
        with torch.no_grad():
            x = torch.as_tensor(obs)
            ref = policy.scores(x).numpy() if isinstance(policy, ArgmaxPolicy) else policy(x).numpy()
    if isinstance(policy, ArgmaxPolicy):
        gap, _, ok = _discrete_gap(policy, ref, np.asarray(got, np.int64), FP32_ATOL, "random")
    else:
        gap, ok = _continuous_gap(policy, ref, got, FP32_ATOL)
    if not ok or not np.isfinite(gap):
        raise ExportCheckError(f"the {what} C policy and torch disagree: max |diff| {gap:.3g} > {FP32_ATOL:g}; "
                               "report this (with the checkpoint) and export ONNX meanwhile")
    return gap


def _compiled_check(policy: DeployedPolicy, program: Program, header: str, source: str, obs: np.ndarray,
                    cc: str) -> float:
    """Build the code with -Wall -Wextra -Werror, run it on ``obs`` and on a NaN observation."""
    with tempfile.TemporaryDirectory(prefix="edgerl-c-") as tmp:
        d = Path(tmp)
        (d / HEADER).write_text(header)
        (d / SOURCE).write_text(source)
        try:
            compile_c([d / SOURCE], d / "policy.so", (*CFLAGS, *STRICT_FLAGS), cc)
        except Exception as e:
            raise ExportCheckError(f"the generated C does not compile cleanly ({e}); report this") from None
        lib = NativePolicy(d / "policy.so")
        bad = obs[:1].copy()
        bad[0, 0] = np.nan
        if lib.act_batch(bad)[1] != 1:
            raise ExportCheckError("edgerl_act accepted a NaN observation; report this")
        if program.state is not None:
            return _stream_gap(policy, obs, lambda o, st: _native_step(lib, o, st), "compiled")
        got, rc = lib.act_batch(obs)
        if rc != 0:
            raise ExportCheckError(f"edgerl_act returned {rc} on finite observations; report this")
    return _gap(policy, obs, got, "compiled")


def _native_step(lib: NativePolicy, obs: np.ndarray, state: list[np.ndarray] | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`step_program`'s signature over the compiled ``edgerl_step`` (one stream)."""
    tensors, layers, hidden = lib.state_shape
    flat = np.zeros(lib.state_size, np.float32) if state is None else np.concatenate([s.reshape(-1) for s in state])
    action, new, rc = lib.step(obs, flat)
    if rc != 0:
        raise ExportCheckError(f"edgerl_step returned {rc} on finite observations; report this")
    return action[None], list(new.reshape(tensors, layers, 1, hidden))


def _stream_gap(policy: DeployedPolicy, obs: np.ndarray, step: Any, what: str) -> float:
    """A recurrent policy's gap to torch over ``obs`` as one stream (batch 1), the state fed back and
    zeroed at the parity stream's episode starts; actions and states are both compared."""
    starts = stream_starts(len(obs))
    scores = policy.score_step if isinstance(policy, ArgmaxPolicy) else None  # a discrete one: judged on its scores
    with torch.no_grad():
        ref, ref_states = policy.run_sequence(torch.as_tensor(obs)[:, None], torch.as_tensor(starts)[:, None],
                                              step=scores)
    got, got_states, state = [], [], None
    for t in range(len(obs)):
        action, state = step(obs[t], None if starts[t] else state)
        got.append(action[0])
        got_states.append(state)
    gap = _gap(policy, obs, np.asarray(got), what, ref=ref[:, 0].numpy())
    for k, r in enumerate(ref_states):  # each [T, layers, 1, hidden]
        g = np.stack([s[k] for s in got_states]).astype(np.float64)
        diff = np.abs(g - r.numpy())
        if not np.all(diff <= FP32_ATOL * np.maximum(1.0, np.abs(r.numpy()))):
            raise ExportCheckError(f"the {what} C policy's recurrent state and torch's disagree: max |diff| "
                                   f"{float(np.nanmax(diff)) if diff.size else 0:.3g}; report this and export ONNX meanwhile")
        gap = max(gap, float(diff.max(initial=0.0)))
    return gap


def export_c(ckpt_path: str | os.PathLike, out_dir: str | os.PathLike | None = None, *, seed: int = 0,
             source_sha256: str | None = None, source_name: str | None = None,
             compile_check: bool = True) -> CExportReport:
    """Write ``policy.h`` + ``policy.c`` for a train or policy checkpoint, after checking them.

    The deployed policy (:func:`~edgerl.export.policy.policy_from_checkpoint`, the one ONNX export
    traces) is lowered to a layer list, which is run in numpy against torch; with a C compiler on
    PATH the code is also built with ``-Wall -Wextra -Werror`` and run against torch. Files are
    written (atomically) only after every check passed.

    Args:
        ckpt_path: Checkpoint file (or a run folder holding ``ckpt.pt``).
        out_dir: Folder of the two files; default the checkpoint's folder.
        seed: Seeds the check observations.
        source_sha256: sha256 recorded in the header (default: the checkpoint file's).
        source_name: Source recorded in the header (default: ``ckpt_path``).
        compile_check: Build and run the code when a compiler is present.

    Raises:
        CheckpointError: Unreadable checkpoint. NativeExportError: out of scope (CNN, fp16, ...).
        ExportCheckError: The C policy disagrees with torch (nothing written).
    """
    t0 = time.perf_counter()
    ckpt_file = checkpoint_file(ckpt_path)
    ckpt = load_checkpoint(ckpt_file)
    out = Path(out_dir) if out_dir is not None else ckpt_file.parent
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; --format c writes policy.h and policy.c into a folder (-o DIR)")
    space = obs_space(ckpt)
    if len(space["shape"]) != 1 or np.dtype(space["dtype"]).kind not in "f":
        raise NativeExportError(f"C export takes vector observations (float, 1-D); this policy observes "
                                f"{space['dtype']}{list(space['shape'])} (image/CNN policies are out of scope: export ONNX)")
    policy = policy_from_checkpoint(ckpt)
    program = lower_policy(policy)
    sha = source_sha256 or sha256_file(ckpt_file)
    contract = build_contract(ckpt, policy, checkpoint=os.fspath(ckpt_path), sha256=sha, steps=None, opset=0,
                              versions=library_versions())
    act = contract["action"]
    low, high = ([fill if v is None else v for v in (act[k] or [None] * program.act_dim)]  # None: unbounded
                 for k, fill in (("low", -np.inf), ("high", np.inf)))
    meta = Meta(algo=ckpt["algo"], env_id=ckpt["env"]["id"], source=source_name or os.fspath(ckpt_path),
                source_sha256=sha, edgerl_version=edgerl.__version__, action_low=low, action_high=high,
                obs_names=contract["observation"].get("names"), baked_in=policy.baked_in)
    header, source = emit(program, meta)

    obs = random_observations(space, CHECK_OBS, np.random.default_rng(seed), *policy_obs_stats(policy))
    obs = np.ascontiguousarray(obs, np.float32)
    if program.state is None:
        diffs = {"ir": _gap(policy, obs, run_program(program, obs), "lowered")}
    else:
        diffs = {"ir": _stream_gap(policy, obs, lambda o, st: step_program(program, o[None], st), "lowered")}
    checks, notes = ["lowering", "ir-parity"], []
    cc = find_compiler() if compile_check else None
    if cc is not None:
        diffs["compiled"] = _compiled_check(policy, program, header, source, obs, cc)
        checks += ["compiles -Wall -Wextra -Werror -pedantic", "compiled-parity", "rejects-nan"]
    else:
        notes.append("no C compiler here: the code was checked through its layer list only" if compile_check
                     else "compile check skipped")
    atomic_write_text(out / HEADER, header)
    atomic_write_text(out / SOURCE, source)
    return CExportReport(
        header_path=str(out / HEADER), source_path=str(out / SOURCE), algo=ckpt["algo"], env_id=ckpt["env"]["id"],
        checkpoint=os.fspath(ckpt_path), sha256=sha, obs_dim=program.obs_dim, act_dim=program.act_dim,
        discrete=program.discrete, params=program.params, macs=program.macs,
        layers=[layer.name for layer in program.layers], max_abs_diff=diffs, checks=checks, compiler=cc,
        seconds=time.perf_counter() - t0, notes=notes)

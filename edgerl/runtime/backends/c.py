"""Native backend ``c``: the bundle's ``policy.c`` (``edgerl export --format c``) compiled with the
system C compiler into a shared library and called through ctypes.

The library is built on the device at first load and cached like a TensorRT engine, keyed by the
sha256 of ``policy.c`` + ``policy.h``, the compiler's version and target, and the flags (recorded,
with the library's own sha256, in a ``.json`` beside it). The cache lives OUTSIDE the bundle
(:func:`native_cache_dir`): a verified bundle holds no loadable code it does not list, so its
``cache/`` may hold data only (see ``edgerl_runtime.bundle``), and a library is loaded only when its
sha256 matches its record. A compact MLP policy computes in well under a
microsecond, so a call costs what ctypes costs: no session, no graph, no allocation.

Generated-code ABI (see ``policy.h``): ``int edgerl_act(const float *obs, edgerl_action_t *action,
edgerl_scratch *s)`` and ``edgerl_act_batch(obs, action, n, s)``; ``edgerl_action_t`` is float
(continuous) or int32_t (discrete index); sizes are exported as ``const`` integers
(``edgerl_obs_dim``, ``edgerl_act_dim``, ``edgerl_discrete``, ``edgerl_scratch_size``). A recurrent
policy (``edgerl_state_size > 0``, ``edgerl_state_kind`` ``lstm``/``gru``) has ``int edgerl_step(obs,
state_in, action, state_out, s)`` instead, its state ``[tensor][layer][unit]`` as the graph's
``h_in``/``c_in``: the backend exposes it as the same state tensors as the ONNX backends.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..contract import RECURRENT_STATES, state_io_names
from ..errors import ActionError, BackendUnavailableError, BundleError, ObservationError
from ..fileio import atomic_write, atomic_write_text
from ..profile import TargetProfile
from . import Backend, register_backend

log = logging.getLogger(__name__)

CFLAGS = ("-std=c99", "-O3", "-fPIC", "-shared")
"""Flags of the shared library. C99 mode sets ``-ffp-contract=off`` (no FMA contraction, so every
output sums its inputs in order, as the layer list says). -O3, not -O2: -O2's very-cheap
vectoriser skips loops with a remainder (102 outputs), and 17-102-102-6 takes 2.7 us at -O2 against
1.1 us at -O3 (p50, this CPU). No -march=native: a cached library must run on any CPU of its triple."""
STRICT_FLAGS = ("-Wall", "-Wextra", "-Werror", "-pedantic")
"""Warnings the generated code is built with in the tests and at export (it must stay clean)."""
SOURCE, HEADER = "policy.c", "policy.h"
ERR_OBS, ERR_ACTION, ERR_STATE = 1, 2, 3
"""Return codes of ``edgerl_act``/``edgerl_step``: non-finite observation, network output, next state."""
CC_HINT = "install a C compiler (Debian/Ubuntu: sudo apt install gcc) or set CC"


def find_compiler() -> str | None:
    """``$CC``, else the first of ``cc``, ``gcc``, ``clang`` on PATH (None if there is none)."""
    env = os.environ.get("CC")
    if env:
        return shutil.which(env) or None
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def compiler_id(cc: str) -> str:
    """``<first line of cc --version> / <target triple>``: what the cache key needs of the compiler."""
    def out(*args: str) -> str:
        try:
            return subprocess.run([cc, *args], capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"
    return f"{(out('--version').splitlines() or ['?'])[0]} / {out('-dumpmachine')}"


def compile_c(sources: list[Path], out: Path, flags: tuple[str, ...] | list[str], cc: str | None = None,
              libs: tuple[str, ...] = ("-lm",)) -> None:
    """Compile ``sources`` to ``out`` (atomically); a failure is a one-line error with the first message.

    Raises:
        BackendUnavailableError: No compiler, or the compiler rejected the code.
    """
    cc = cc or find_compiler()
    if cc is None:
        raise BackendUnavailableError(f"no C compiler found; {CC_HINT}")

    def _build(tmp: str) -> None:
        cmd = [cc, *flags, *map(str, sources), "-o", tmp, *libs]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise BackendUnavailableError(f"{' '.join(cmd)} did not finish within 300 s") from None
        if proc.returncode != 0:
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:300])
            raise BackendUnavailableError(f"{' '.join(cmd)} failed: {first}")

    try:
        atomic_write(out, _build)
    except OSError as e:  # e.g. a read-only bundle: fall back to the next backend, with the reason
        raise BackendUnavailableError(f"cannot write the C policy library {out} ({e}); make the folder "
                                      "writable or pass another cache_dir") from None


def native_cache_dir() -> Path:
    """Where built policy libraries live: ``$EDGERL_NATIVE_CACHE``, else
    ``$XDG_CACHE_HOME/edgerl/native``, else ``~/.cache/edgerl/native`` (the device user's own cache,
    as trusted as the installed runtime; never inside a bundle)."""
    env = os.environ.get("EDGERL_NATIVE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgerl" / "native"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cached(path: Path, sha: str) -> bool:
    """Whether ``path`` is a library built from sources ``sha`` and unchanged since (its record says so)."""
    try:
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(meta, dict) and meta.get("sources_sha256") == sha and path.is_file()
            and meta.get("library_sha256") == _file_sha256(path))


def library_path(cache_dir: str | os.PathLike, source_sha: str, cc_id: str, flags: tuple[str, ...]) -> Path:
    """Cache file of a built policy library; every input that changes the binary is in the key."""
    key = hashlib.sha256(f"{cc_id}\n{' '.join(flags)}".encode()).hexdigest()[:12]
    return Path(cache_dir) / f"policy-c-{source_sha[:16]}-{key}.so"


def sources_sha256(src_dir: Path) -> str:
    """sha256 over ``policy.c`` and ``policy.h``."""
    h = hashlib.sha256()
    for name in (SOURCE, HEADER):
        h.update((src_dir / name).read_bytes())
    return h.hexdigest()


def build_library(src_dir: str | os.PathLike, cache_dir: str | os.PathLike, flags: tuple[str, ...] = CFLAGS,
                  force: bool = False) -> Path:
    """Build (or reuse) the shared library of ``src_dir/policy.c``; returns its cached path."""
    src = Path(src_dir)
    if not (src / SOURCE).is_file() or not (src / HEADER).is_file():
        raise BackendUnavailableError(f"{src} has no {SOURCE}/{HEADER}; deploy with a profile whose backends "
                                      "list c (or export them with edgerl export --format c)")
    cc = find_compiler()
    if cc is None:
        raise BackendUnavailableError(f"no C compiler found; {CC_HINT}")
    cc_id, sha = compiler_id(cc), sources_sha256(src)
    path = library_path(cache_dir, sha, cc_id, flags)
    if not force and _cached(path, sha):
        log.info("using cached C policy library %s", path)
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BackendUnavailableError(f"cannot create the C library cache {path.parent} ({e}); "
                                      "set EDGERL_NATIVE_CACHE to a writable folder") from None
    compile_c([src / SOURCE], path, flags, cc)
    meta = {"sources_sha256": sha, "library_sha256": _file_sha256(path), "compiler": cc, "compiler_id": cc_id,
            "flags": list(flags), "libs": ["-lm"], "built": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    atomic_write_text(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    log.info("built C policy library %s (%s %s)", path, cc_id, " ".join(flags))
    return path


class NativePolicy:
    """A loaded policy library: ``act`` on float32 buffers, and its exported sizes."""

    def __init__(self, lib_path: str | os.PathLike) -> None:
        self.path = Path(lib_path)
        try:
            lib = ctypes.CDLL(os.fspath(self.path))
            self.obs_dim = int(ctypes.c_int32.in_dll(lib, "edgerl_obs_dim").value)
            self.act_dim = int(ctypes.c_int32.in_dll(lib, "edgerl_act_dim").value)
            self.discrete = bool(ctypes.c_int32.in_dll(lib, "edgerl_discrete").value)
            self.scratch_size = int(ctypes.c_uint32.in_dll(lib, "edgerl_scratch_size").value)
            self.source_sha256 = (ctypes.c_char * 65).in_dll(lib, "edgerl_source_sha256").value.decode()
        except (OSError, ValueError) as e:
            raise BundleError(f"{self.path}: not a policy library of edgerl export --format c ({e}); "
                              "delete it from cache/ and load again") from None
        try:
            self.state_size = int(ctypes.c_int32.in_dll(lib, "edgerl_state_size").value)
            self.state_layers = int(ctypes.c_int32.in_dll(lib, "edgerl_state_layers").value)
            self.state_kind = (ctypes.c_char * 8).in_dll(lib, "edgerl_state_kind").value.decode()
        except ValueError:  # generated before recurrent policies: feed-forward
            self.state_size, self.state_layers, self.state_kind = 0, 0, ""
        if self.state_size and (self.state_kind not in RECURRENT_STATES or self.state_layers < 1 or self.state_size % (
                self.state_layers * len(RECURRENT_STATES[self.state_kind]))):
            raise BundleError(f"{self.path}: inconsistent recurrent state ({self.state_kind!r}, {self.state_size} floats "
                              f"over {self.state_layers} layers); re-export the policy")
        self._lib = lib
        self.scratch = ctypes.create_string_buffer(max(self.scratch_size, 1))
        self.action_dtype = np.dtype(np.int32 if self.discrete else np.float32)
        if self.state_size:
            self.step_fn = lib.edgerl_step
            self.step_fn.restype = ctypes.c_int
            self.step_fn.argtypes = [ctypes.c_void_p] * 5
            return
        self.act_fn = lib.edgerl_act
        self.act_fn.restype = ctypes.c_int
        self.act_fn.argtypes = [ctypes.c_void_p] * 3
        self.batch_fn = lib.edgerl_act_batch
        self.batch_fn.restype = ctypes.c_int
        self.batch_fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p]

    @property
    def state_shape(self) -> tuple[int, int, int]:
        """``(tensors, layers, hidden)`` of a recurrent policy's state; ``(0, 0, 0)`` when feed-forward."""
        if not self.state_size:
            return 0, 0, 0
        tensors = len(RECURRENT_STATES[self.state_kind])
        return tensors, self.state_layers, self.state_size // (tensors * self.state_layers)

    def step(self, obs: np.ndarray, state_in: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """A recurrent policy's step: ``obs [obs_dim]``, ``state_in [state_size]`` -> ``(action, next
        state, return code)`` (on an error the action is zeros and the state ``state_in``)."""
        x = np.ascontiguousarray(obs, dtype=np.float32).reshape(self.obs_dim)
        state = np.ascontiguousarray(state_in, dtype=np.float32).reshape(self.state_size)
        out = np.zeros(() if self.discrete else (self.act_dim,), self.action_dtype)
        new = state.copy()
        rc = self.step_fn(x.ctypes.data, state.ctypes.data, out.ctypes.data, new.ctypes.data,
                          ctypes.addressof(self.scratch))
        return out, new, int(rc)

    def act_batch(self, obs: np.ndarray) -> tuple[np.ndarray, int]:
        """``[n, obs_dim]`` float32 -> (actions ``[n, act_dim]`` or ``[n]``, return code of the first failure);
        a recurrent policy runs each observation from the zero state (an episode's first step)."""
        x = np.ascontiguousarray(obs, dtype=np.float32)
        n = len(x)
        out = np.zeros((n,) if self.discrete else (n, self.act_dim), self.action_dtype)
        if self.state_size:
            zero = np.zeros(self.state_size, np.float32)
            for k in range(n):
                a, _, rc = self.step(x[k], zero)
                if rc:
                    return out, rc
                out[k] = a
            return out, 0
        rc = self.batch_fn(x.ctypes.data, out.ctypes.data, n, ctypes.addressof(self.scratch))
        return out, int(rc)


@register_backend("c")
class CBackend(Backend):
    """The generated C policy, built with the system compiler and run through ctypes (fp32)."""

    @classmethod
    def available(cls) -> tuple[bool, str]:
        cc = find_compiler()
        if cc is None:
            return False, f"no C compiler found; {CC_HINT}"
        return True, f"C compiler {cc}"

    def __init__(self, onnx_path: str | os.PathLike, profile: TargetProfile, cache_dir: str | os.PathLike) -> None:
        self.require()
        # The C sources sit beside policy.onnx in the bundle (written when the profile lists c).
        # ``cache_dir`` (the bundle's cache/) is for data only: the library goes to native_cache_dir().
        src_dir = Path(onnx_path).parent
        self.library = NativePolicy(build_library(src_dir, native_cache_dir()))
        lib = self.library
        self.input_name, self.output_name = "obs", "action"
        self.input_dtype, self.output_dtype = np.dtype(np.float32), lib.action_dtype
        self.input_shape = (lib.obs_dim,)
        self.output_shape = () if lib.discrete else (lib.act_dim,)
        self.precision = "fp32"
        self.single_input = np.zeros((1, lib.obs_dim), np.float32)
        self._single_output = np.zeros((1, *self.output_shape), lib.action_dtype)
        obs_p, act_p = ctypes.c_void_p(self.single_input.ctypes.data), ctypes.c_void_p(self._single_output.ctypes.data)
        scratch_p = ctypes.c_void_p(ctypes.addressof(lib.scratch))
        # Pointers converted once: the hot path is one foreign call.
        if lib.state_size:  # the state tensors are views of one [tensor][layer][1][unit] buffer each way
            tensors, layers, hidden = lib.state_shape
            self.state_inputs, self.state_outputs = state_io_names(lib.state_kind)
            self.state_shape = (layers, 1, hidden)
            self._state_in = np.zeros((tensors, layers, 1, hidden), np.float32)
            self._state_out = np.zeros_like(self._state_in)
            self.single_state, self.single_state_out = tuple(self._state_in), tuple(self._state_out)
            self._args: tuple[ctypes.c_void_p, ...] = (
                obs_p, ctypes.c_void_p(self._state_in.ctypes.data), act_p, ctypes.c_void_p(self._state_out.ctypes.data),
                scratch_p)
            self._act = lib.step_fn
        else:
            self._args = (obs_p, act_p, scratch_p)
            self._act = lib.act_fn

    def run(self, obs_batch: np.ndarray) -> np.ndarray:
        out, rc = self.library.act_batch(obs_batch)
        if rc:
            self._fail(rc)
        return out

    def run_single(self) -> np.ndarray:
        rc = self._act(*self._args)
        if rc:
            self._fail(rc)
        return self._single_output

    def _fail(self, rc: int) -> None:
        if rc == ERR_OBS:
            raise ObservationError("observation contains NaN or infinity (rejected by edgerl_act); "
                                   "check the sensor or state estimator")
        if rc == ERR_ACTION:
            raise ActionError("policy returned a non-finite action (edgerl_act); not sent. Check the "
                              "observation scale against the training data (normaliser in contract.json)")
        if rc == ERR_STATE:
            raise ActionError("policy produced a non-finite recurrent state (edgerl_step); action not sent, state "
                              "not kept. Check the observation scale, or reset the policy")
        raise BundleError(f"{self.library.path}: edgerl_act returned unknown code {rc}; rebuild the bundle")

    def describe(self) -> str:
        return f"c (fp32, {self.library.path.name})"


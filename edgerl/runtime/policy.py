"""Load a bundle and act: the object a robot's control loop calls.

Safety contract of :meth:`Policy.act`:
  * the observation's shape, dtype kind and finiteness are checked (``ObservationError``), and,
    when the contract's ``io`` terms give plausible ranges (``low``/``high``), that every element
    lies in its term's range (the error names the term and element: a swapped term or wrong units);
  * a NaN/inf network output raises ``ActionError`` instead of reaching the actuators;
  * continuous actions are clipped to the contract's bounds (validated finite and ordered by
    :mod:`.contract`, rounded inwards to the action dtype), and the finiteness test runs on the
    clipped action, so nothing non-finite or out of bounds is ever returned. The exported graph
    already squashes and rescales into the bounds, so clipping only removes float rounding past a
    bound (or guards a graph exported without a squash); discrete actions outside ``[0, n)`` raise
    ``ActionError``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .backends import Backend, get_backend
from .bundle import read_manifest, verify_bundle
from .contract import Contract, read_contract, valid_episode_starts
from .errors import (
    ActionError,
    BackendUnavailableError,
    BundleError,
    ObservationError,
    ProfileError,
)
from .latency import LatencyRecorder
from .profile import TargetProfile, profile_from_json

log = logging.getLogger(__name__)


def select_backend(order: list[str] | tuple[str, ...], onnx_path: Path, profile: TargetProfile,
                   cache_dir: Path) -> tuple[Backend, dict[str, str]]:
    """Construct the first backend of ``order`` that is available here.

    Returns:
        The backend and ``{skipped backend: reason}`` for those tried before it.

    Raises:
        BackendUnavailableError: None of them can run; the message lists every reason.
    """
    skipped: dict[str, str] = {}
    for name in order:
        cls = get_backend(name)
        ok, reason = cls.available()
        if ok:
            try:
                backend = cls(onnx_path, profile, cache_dir)
            except BackendUnavailableError as e:
                ok, reason = False, str(e)
        if not ok:
            skipped[name] = reason
            log.warning("skipping backend %s: %s", name, reason)
            continue
        log.info("using backend %s", backend.describe())
        return backend, skipped
    reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items())
    raise BackendUnavailableError(f"no usable backend among {list(order)} ({reasons})")


class Policy:
    """A verified, reference-checked policy bound to one backend. Create with :meth:`load`."""

    def __init__(self, backend: Backend, contract: Contract, profile: TargetProfile, bundle_dir: Path,
                 skipped: dict[str, str] | None = None, latency_window: int = 4096) -> None:
        self.backend = backend
        self.contract = contract
        self.profile = profile
        self.bundle_dir = bundle_dir
        self.skipped_backends = dict(skipped or {})
        """Backends tried before the chosen one, with the reason each was skipped."""
        self._check_io()
        self._obs_shape = contract.obs_shape
        self._env_dtype = contract.obs_dtype
        self._float_in = backend.input_dtype.kind == "f"
        self._in0 = backend.single_input[0]
        # Hot-path finiteness test: x . 0 is NaN iff x holds a NaN or an inf, and never overflows
        # (0.7 us, against 2 us for isfinite().all() and 3.7 us for sum(dtype=float64)).
        self._flat_in = backend.single_input.reshape(-1)
        self._zero_in = np.zeros_like(self._flat_in)
        self._zero_act = np.zeros(int(np.prod(contract.act_shape, dtype=np.int64)), contract.act_dtype)
        self._act_shape, self._act_dtype = contract.act_shape, contract.act_dtype
        self._discrete, self._n = contract.discrete, contract.n
        lo, hi = contract.act_low, contract.act_high
        self._bounded = lo is not None or hi is not None
        self._low = np.full(self._act_shape, -np.inf) if lo is None else lo
        self._high = np.full(self._act_shape, np.inf) if hi is None else hi
        if not self._discrete:
            self._low, self._high = _inward(self._low, self._high, self._act_dtype)
        self._out_1d = len(self._act_shape) == 1
        self._same_dtype = np.dtype(backend.output_dtype) == np.dtype(self._act_dtype)
        self._latency = LatencyRecorder(profile.latency_budget_us, latency_window)
        # A recurrent graph's state: fed from backend.single_state, the next one read from single_state_out.
        self._state_in, self._state_out = backend.single_state, backend.single_state_out
        self._state_flat = [s.reshape(-1) for s in self._state_out]
        self._zero_state = np.zeros(int(np.prod(backend.state_shape, dtype=np.int64)), np.float32)
        # Plausible observation ranges of the io terms, flat (None: no term gives one).
        self._ranges = contract.obs_ranges
        self._obs_low = None if self._ranges is None else self._ranges.low
        self._obs_high = None if self._ranges is None else self._ranges.high
        self._range_buf = np.empty(int(np.prod(self._obs_shape, dtype=np.int64)), np.float64)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, bundle_dir: str | os.PathLike, backends: list[str] | None = None, verify: bool = True,
             cache_dir: str | os.PathLike | None = None, latency_window: int = 4096,
             trusted_keys: list[Any] | None = None) -> Policy:
        """Verify a bundle, pick a backend, check the reference actions, warm up.

        Args:
            bundle_dir: The bundle folder.
            backends: Backends to try in order; default the profile's ``backends``.
            verify: Check every file's sha256 against ``manifest.json`` first.
            cache_dir: Where engines are cached; default ``bundle_dir/cache``.
            latency_window: Number of recent ``act`` calls kept for percentiles.
            trusted_keys: Public keys whose signature the bundle needs (see :func:`.bundle.verify_bundle`;
                None: the keys this machine trusts).

        Raises:
            BundleError: Tampered/incomplete bundle, or actions that disagree with ``reference.npz``.
            BackendUnavailableError: No backend of the list can run here (reasons listed).
        """
        root = Path(bundle_dir)
        if verify:
            verify_bundle(root, trusted_keys)
        else:
            read_manifest(root)
        contract = read_contract(root / "contract.json")
        try:
            profile = profile_from_json(root / "profile.json")
        except ProfileError as e:
            raise BundleError(f"{e}; re-run edgerl deploy (with the edgerl version of this runtime)") from None
        ref_obs, ref_act, ref_starts = _read_reference(root / "reference.npz", contract)
        order = list(backends) if backends is not None else list(profile.backends)
        backend, skipped = select_backend(order, root / "policy.onnx", profile,
                                          Path(cache_dir) if cache_dir is not None else root / "cache")
        if backend.precision != contract.precision:  # e.g. an "int8" bundle whose graph is float32
            log.warning("%s: contract.json says %s but backend %s computes in %s", root, contract.precision,
                        backend.name, backend.precision)
        try:
            policy = cls(backend, contract, profile, root, skipped, latency_window)
            policy.check_reference(ref_obs, ref_act, ref_starts)
            with policy.unchecked_ranges():  # warm up on the reference observations
                for i in range(profile.warmup_runs):
                    policy.act(ref_obs[i % len(ref_obs)])
            policy.reset()
        except BaseException:
            backend.close()
            raise
        policy.reset_stats()
        return policy

    def _check_io(self) -> None:
        b, c, path = self.backend, self.contract, self.bundle_dir / "policy.onnx"
        todo = "the ONNX file and contract.json disagree: re-export the policy and re-run edgerl deploy"
        if b.input_shape != c.obs_shape:
            raise BundleError(f"{path}: input {b.input_name!r} takes {list(b.input_shape)} per sample but "
                              f"contract.json says observation.shape {list(c.obs_shape)}; {todo}")
        if b.output_shape != c.act_shape:
            raise BundleError(f"{path}: output {b.output_name!r} gives {list(b.output_shape)} per sample but "
                              f"contract.json says action.shape {list(c.act_shape)}; {todo}")
        if b.input_dtype.kind not in "fu":
            raise BundleError(f"{path}: input dtype {b.input_dtype} is neither float nor uint8; {todo}")
        if not (b.output_dtype.kind in "iu" if c.discrete else b.output_dtype.kind == "f"):
            raise BundleError(f"{path}: output dtype {b.output_dtype} does not fit action.discrete={c.discrete}; {todo}")
        rec = c.recurrent
        want = (rec.inputs, rec.outputs, rec.shape) if rec is not None else ((), (), ())
        if (b.state_inputs, b.state_outputs, b.state_shape if b.state_inputs else ()) != want:
            graph = (f"state {list(b.state_inputs)} -> {list(b.state_outputs)} of shape {list(b.state_shape)}"
                     if b.state_inputs else "no state (feed-forward)")
            says = f"recurrent {rec.kind} state {list(rec.inputs)} of shape {list(rec.shape)}" if rec else "no recurrent section"
            raise BundleError(f"{path}: the graph has {graph} but contract.json has {says}; {todo}")

    def check_reference(self, obs: np.ndarray, expected: np.ndarray, starts: np.ndarray | None = None) -> None:
        """Compare this backend's actions with the training framework's; raise on mismatch. A
        recurrent policy reads ``obs`` as one stream, reset wherever ``starts`` is True."""
        p, src = self.profile, self.bundle_dir / "reference.npz"
        try:
            with self.unchecked_ranges():
                got = self._act_sequence(obs, starts) if self.contract.recurrent is not None else self.act_batch(obs)
        except (ObservationError, ActionError) as e:
            raise BundleError(f"{src}: reference check failed on backend {self.backend.name}: {e}; re-run edgerl "
                              "deploy") from None
        todo = ("policy.onnx and reference.npz disagree; re-export the policy and re-run edgerl deploy "
                "(for fp16 targets, loosen parity_atol_fp16 in the profile only if episodic return is unaffected)")
        if self.contract.discrete:
            frac = float(np.mean(got != expected))
            if not frac <= p.effective_discrete_mismatch:
                first = int(np.flatnonzero(got != expected)[0])
                raise BundleError(f"{src}: reference check failed on backend {self.backend.name}: {frac:.1%} of "
                                  f"discrete actions differ (allowed {p.effective_discrete_mismatch:.1%}), first at "
                                  f"sample {first} ({int(got[first])} vs {int(expected[first])}); {todo}")
            return
        atol, rtol = p.effective_atol, p.parity_rtol
        ref = expected.astype(np.float64)
        excess = np.abs(got.astype(np.float64) - ref) - (atol + rtol * np.abs(ref))
        bad = ~(excess <= 0)  # NaN in the reference (or the output) fails
        if bad.any():
            worst = np.unravel_index(int(np.argmax(np.where(np.isnan(excess), np.inf, excess))), excess.shape)
            diff = float(abs(float(got[worst]) - ref[worst]))
            raise BundleError(f"{src}: reference check failed on backend {self.backend.name} ({self.backend.precision}): "
                              f"action {[int(i) for i in worst[1:]]} of sample {int(worst[0])} is {float(got[worst]):.6g}, reference "
                              f"{ref[worst]:.6g} (|diff| {diff:.3g} > atol {atol:g} + rtol {rtol:g}*|ref|); {todo}")

    @contextlib.contextmanager
    def unchecked_ranges(self) -> Iterator[None]:
        """Inside, ``act``/``act_batch`` skip the io terms' plausible-range check (shape, dtype and
        finiteness are still checked): for ``reference.npz`` and warm-up observations, which
        export may draw at random from the observation space, not from the robot."""
        low, self._obs_low = self._obs_low, None
        try:
            yield
        finally:
            self._obs_low = low

    def _act_sequence(self, obs: np.ndarray, starts: np.ndarray | None = None) -> np.ndarray:
        """A recurrent policy's actions for ``obs`` as one stream from the zero state, reset where
        ``starts`` is True (the semantics of a recurrent bundle's ``reference.npz``); the state is
        zero again afterwards."""
        self.reset()
        try:
            acts = []
            for i, o in enumerate(obs):
                if starts is not None and starts[i]:
                    self.reset()
                acts.append(self.act(o))
        finally:
            self.reset()
        return np.asarray(acts, dtype=self._act_dtype).reshape(len(obs), *self._act_shape)

    # ------------------------------------------------------------------ acting
    @property
    def recurrent(self) -> bool:
        """Whether the policy carries a state between ``act`` calls (reset it at episode start)."""
        return bool(self._state_in)

    def reset(self) -> None:
        """Start a new episode: a recurrent policy's state becomes zeros (contract ``recurrent.reset``);
        nothing for a feed-forward policy. Call it whenever the robot (re)starts an episode."""
        for s in self._state_in:
            s.fill(0.0)

    def act(self, obs: Any) -> np.ndarray | int:
        """One observation (as the env returns it) -> one action (contract shape/dtype; int if discrete).

        Raises:
            ObservationError: Wrong shape, wrong dtype kind, NaN or infinity (names expected vs got
                and the first bad index).
            ActionError: The network produced NaN/inf or an invalid discrete index.

        An infinite observation also makes numpy emit one "invalid value" RuntimeWarning (from the
        0.7 us finiteness test) before the ObservationError.
        """
        t0 = time.perf_counter_ns()
        x = obs if type(obs) is np.ndarray else _as_array(obs)
        if x.shape != self._obs_shape:
            raise self._shape_error(x, batched=False)
        if x.dtype != self._env_dtype and not (self._float_in and x.dtype.kind == "f"):
            raise self._dtype_error(x)
        self._in0[...] = x  # cast into the preallocated model input (dtype checked above)
        if self._float_in and self._flat_in.dot(self._zero_in) != 0:
            self._raise_non_finite(x, self._in0)
        if self._obs_low is not None:  # clip into the ranges: nonzero change iff outside (~3 us, not 7 for any())
            flat, buf = x.reshape(-1), self._range_buf
            np.minimum(np.maximum(flat, self._obs_low, out=buf), self._obs_high, out=buf)
            np.subtract(buf, flat, out=buf)
            if buf.dot(buf) != 0:
                raise self._range_error(flat[None], batched=False)
        out = self.backend.run_single()[0]
        if self._discrete:
            a = int(out)
            if not 0 <= a < self._n:
                raise ActionError(f"policy returned discrete action {a}, outside [0, {self._n}) (contract action.n)")
            result: np.ndarray | int = a
        else:
            if self._bounded and self._same_dtype:
                result = np.maximum(out, self._low)  # a fresh array: the backend may reuse `out`
                np.minimum(result, self._high, out=result)
            else:
                result = np.empty(self._act_shape, self._act_dtype)
                if self._bounded:
                    np.minimum(np.maximum(out, self._low, out=result, casting="unsafe"), self._high, out=result)
                else:
                    np.copyto(result, out, casting="unsafe")
            # after the clip: a NaN passes np.maximum/np.minimum, and nothing else may reach the actuators
            if (result if self._out_1d else result.reshape(-1)).dot(self._zero_act) != 0:
                raise ActionError(f"policy returned a non-finite action {out.tolist()}; not sent. Check the "
                                  "observation scale against the training data (normaliser in contract.json)")
        if self._state_in:  # keep the next state only when all of it is finite
            for name, flat in zip(self.backend.state_outputs, self._state_flat, strict=True):
                if flat.dot(self._zero_state) != 0:
                    raise ActionError(f"policy returned a non-finite recurrent state {name!r}; action not sent, "
                                      "state not kept (call reset() if the episode restarts)")
            for dst, src in zip(self._state_in, self._state_out, strict=True):
                np.copyto(dst, src)
        self._latency.add(time.perf_counter_ns() - t0)
        return result

    def act_batch(self, obs: Any) -> np.ndarray:
        """``[B, *obs_shape]`` -> ``[B, *act_shape]`` actions (same checks as :meth:`act`; not timed).

        The B observations are independent; a recurrent policy's action depends on its state, so
        it refuses (call :meth:`act` once per step)."""
        if self._state_in:
            raise ObservationError("act_batch runs independent observations but this policy is recurrent "
                                   f"({self.contract.recurrent.kind if self.contract.recurrent else ''} state): call "
                                   "act() once per control step and reset() at each episode start")
        x = _as_array(obs)
        if x.ndim != len(self._obs_shape) + 1 or x.shape[1:] != self._obs_shape:
            raise self._shape_error(x, batched=True)
        if x.dtype != self._env_dtype and not (self._float_in and x.dtype.kind == "f"):
            raise self._dtype_error(x)
        if len(x) == 0:
            return np.empty((0, *self._act_shape), self._act_dtype)
        with np.errstate(over="ignore"):
            xb = np.ascontiguousarray(x, dtype=self.backend.input_dtype)
        if self._float_in and not np.isfinite(xb).all():
            self._raise_non_finite(x, xb, batched=True)
        if self._obs_low is not None:
            flat = x.reshape(len(x), -1)
            if (flat < self._obs_low).any() or (flat > self._obs_high).any():
                raise self._range_error(flat, batched=True)
        step = self.backend.max_batch or len(xb)
        outs = [self.backend.run(xb[i:i + step]) for i in range(0, len(xb), step)]
        out = outs[0] if len(outs) == 1 else np.concatenate(outs)
        if self._discrete:
            bad = (out < 0) | (out >= self._n)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ActionError(f"policy returned discrete action {int(out[i])} for sample {i}, outside [0, {self._n})")
            return out.astype(self._act_dtype)
        acts = np.clip(out, self._low, self._high).astype(self._act_dtype)
        finite = np.isfinite(acts).reshape(len(acts), -1).all(axis=1)
        if not finite.all():
            raise ActionError(f"policy returned a non-finite action for sample {int(np.flatnonzero(~finite)[0])}; not sent")
        return acts

    # ------------------------------------------------------------------ errors (slow path)
    def _shape_error(self, x: np.ndarray, batched: bool) -> ObservationError:
        want = (["batch"] if batched else []) + list(self._obs_shape)
        hint = " (pass one observation to act(), a batch to act_batch())" if x.ndim != len(want) else ""
        return ObservationError(f"observation shape {list(x.shape)} does not match the contract: expected {want}{hint}")

    def _dtype_error(self, x: np.ndarray) -> ObservationError:
        if self._float_in:
            want = f"a floating-point array (contract dtype {self._env_dtype})"
        else:
            want = f"{self._env_dtype} (e.g. raw uint8 image pixels; the graph normalises them)"
        return ObservationError(f"observation dtype {x.dtype} is wrong: expected {want}")

    def _range_error(self, flat: np.ndarray, batched: bool) -> ObservationError:
        """The first element outside its io term's plausible range, named (slow path)."""
        assert self._ranges is not None and self._obs_low is not None and self._obs_high is not None
        bad = np.argwhere((flat < self._obs_low) | (flat > self._obs_high))[0]
        k, i = int(bad[0]), int(bad[1])
        lo, hi = self._obs_low[i], self._obs_high[i]
        sample = f" (sample {k})" if batched else ""
        return ObservationError(
            f"observation term {self._ranges.where(i)} = {float(flat[k, i]):.6g}{sample} outside its io range "
            f"[{lo:g}, {hi:g}]{self._ranges.unit(i)}: wrong observation order or units? (contract.json io.observation)")

    def _raise_non_finite(self, x: np.ndarray, cast: np.ndarray, batched: bool = False) -> None:
        """Raise ObservationError naming the first NaN/inf (or float overflow in the cast)."""
        def where(idx: tuple[int, ...]) -> str:
            return f"sample {idx[0]}, index {list(idx[1:])}" if batched else f"index {list(idx)}"

        with np.errstate(over="ignore", invalid="ignore"):
            bad = ~np.isfinite(np.asarray(x, dtype=np.float64))
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ObservationError(f"observation contains {x[idx]} at {where(idx)} "
                                   f"({int(bad.sum())} non-finite value(s)); check the sensor or state estimator")
        bad = ~np.isfinite(cast)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ObservationError(f"observation value {x[idx]} at {where(idx)} overflows the model's "
                                   f"input dtype {cast.dtype}")

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict[str, Any]:
        """Latency of ``act`` since load/reset: count, p50/p90/p99 (recent window) and max in us,
        deadline misses against the profile's ``latency_budget_us``, and the backend."""
        s: dict[str, Any] = self._latency.summary()
        s["backend"] = self.backend.name
        return s

    def reset_stats(self) -> None:
        """Forget recorded latencies and misses."""
        self._latency.reset()

    @property
    def backend_name(self) -> str:
        """Name of the backend in use (``trt``, ``ort-cuda`` or ``ort-cpu``)."""
        return self.backend.name

    def close(self) -> None:
        """Release backend resources (device memory, streams)."""
        self.backend.close()

    def __enter__(self) -> Policy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_array(obs: Any) -> np.ndarray:
    """``np.asarray`` whose failures (ragged lists, odd objects) are an ObservationError."""
    try:
        return np.asarray(obs)
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ObservationError(f"observation of type {type(obs).__name__} is not an array ({msg}); pass a numpy "
                               "array (or equal-length nested lists) of the contract's shape") from None


def _inward(low: np.ndarray, high: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Bounds in the action dtype, rounded towards the inside, so a clipped action never lies outside
    the contract's float64 bounds."""
    lo, hi = low.astype(dtype), high.astype(dtype)
    lo = np.where(lo.astype(np.float64) < low, np.nextafter(lo, dtype.type(np.inf)), lo).astype(dtype)
    hi = np.where(hi.astype(np.float64) > high, np.nextafter(hi, dtype.type(-np.inf)), hi).astype(dtype)
    return lo, hi


def _read_reference(path: Path, contract: Contract) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``obs``, ``action`` and (recurrent bundles, optional) the episode ``start`` flags."""
    try:
        with np.load(path, allow_pickle=False) as z:
            obs, act = z["obs"], z["action"]
            starts = z["start"] if "start" in z.files else None
    except FileNotFoundError:
        raise BundleError(f"{path} is missing; re-run edgerl deploy") from None
    except (KeyError, ValueError, OSError) as e:
        raise BundleError(f"{path}: unreadable or lacks arrays 'obs' and 'action' ({e}); re-run edgerl deploy") from None
    if obs.dtype.kind not in "fiub" or act.dtype.kind not in "fiu":
        raise BundleError(f"{path}: obs {obs.dtype} / action {act.dtype} are not real numbers; re-run edgerl deploy")
    if obs.ndim < 1 or len(obs) < 1 or obs.shape[1:] != contract.obs_shape or act.shape != (len(obs), *contract.act_shape):
        raise BundleError(f"{path}: obs {obs.shape} / action {act.shape} do not match the contract shapes "
                          f"{list(contract.obs_shape)} / {list(contract.act_shape)}; re-run edgerl deploy")
    if starts is not None and not valid_episode_starts(starts, len(obs), contract):
        raise BundleError(f"{path}: 'start' must be bool [{len(obs)}] in a recurrent bundle, got {starts.dtype} "
                          f"{list(starts.shape)} ({'recurrent' if contract.recurrent else 'feed-forward'} contract); "
                          "re-run edgerl deploy")
    return obs, act, starts

"""Running a sweep's training runs: one ``edgerl train`` subprocess per run (one torch thread),
on a local pool of workers or as Ray tasks, each continuing where a killed sweep left it.

A run folder is finished when it holds ``done.json`` (written after its checkpoint reached its
step budget); a folder with a checkpoint but no ``done.json`` resumes (``edgerl train --resume``);
an empty one starts over. The sweep folder is locked while a sweep runs in it, so a re-run never
trains the same run twice at once.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgerl.errors import ConfigError, EdgerlError
from edgerl.runtime.fileio import atomic_write_text
from edgerl.sweep.spec import RunPlan, flag_args


class SweepError(EdgerlError):
    """A sweep could not run (locked folder, a failed run, a missing executor)."""


@contextmanager
def sweep_lock(out: Path) -> Iterator[None]:
    """Hold ``out/sweep.lock`` (released by the OS if this process dies)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sweep.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            raise SweepError(f"another edgerl sweep is running in {out}; wait for it or use another --out") from e
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _die_with_parent() -> None:
    """Child setup: SIGKILL this process when the thread that started it dies (Linux), so a
    killed sweep leaves no training run behind to race the next one."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def finished_steps(folder: Path) -> tuple[int, int] | None:
    """``(global_step, total_steps)`` of the run's checkpoint, or None without one."""
    from edgerl.checkpoint import load_checkpoint

    if not (folder / "ckpt.pt").exists():
        return None
    ckpt = load_checkpoint(folder / "ckpt.pt")
    return int(ckpt["counters"]["global_step"]), int(ckpt["config"]["run"]["total_steps"])


def train_command(plan: RunPlan, extra: dict[str, Any] | None = None) -> list[str]:
    """The ``edgerl train`` command of a run: a fresh start, or ``--resume`` when it has a checkpoint.
    A fresh start overwrites what a run killed before its first checkpoint left (its metrics, a
    replay file): without a checkpoint there is nothing to continue."""
    base = [sys.executable, "-m", "edgerl.cli", "train"]
    if (plan.folder / "ckpt.pt").exists():
        return [*base, "--resume", str(plan.folder), "--progress", "false"]
    flags = {"threads": 1, **plan.flags, **(extra or {})}
    return [*base, "--env", plan.env, "--seed", str(plan.seed), "--out", str(plan.folder), "--overwrite",
            "--progress", "false", *flag_args(flags)]


DISTILL_REPORT = "distill.json"
"""A distilled run's report (``edgerl distill --json``): its score is the student's return."""


def distill_command(plan: RunPlan) -> list[str]:
    """The ``edgerl distill`` command of a distilled run (restartable: a rerun continues)."""
    options = dict(plan.distill)
    init = options.pop("init_from", None)
    teacher = plan.source(str(plan.distill_of)) / "ckpt.pt"
    cmd = [sys.executable, "-m", "edgerl.cli", "distill", str(teacher), "-o", str(plan.folder / "student.pt"),
           "--json", str(plan.folder / DISTILL_REPORT), "--seed", str(plan.seed), "--threads", "1",
           "--progress", "false", *flag_args(options)]
    return cmd + (["--init", str(plan.source(init) / "ckpt.pt")] if init else [])


def _logged(cmd: list[str], folder: Path, cwd: str | None) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    with open(folder / "train.log", "a") as log:
        log.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    return proc.returncode


def run_plan(plan: RunPlan, extra: dict[str, Any] | None = None, cwd: str | None = None) -> dict[str, Any]:
    """Train or distil (or continue, or skip) one run; returns its ``done.json`` record."""
    done = plan.folder / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    plan.folder.mkdir(parents=True, exist_ok=True)
    if plan.distill_of is not None:
        finished = (plan.folder / DISTILL_REPORT).exists() and (plan.folder / "student.pt").exists()
        code = 0 if finished else _logged(distill_command(plan), plan.folder, cwd)  # killed before done.json
        if code != 0 or not (plan.folder / DISTILL_REPORT).exists():
            raise SweepError(f"run {plan.folder} failed (exit {code}); see {plan.folder / 'train.log'}")
        record = {"variant": plan.variant, "env": plan.env, "seed": plan.seed, "distill_of": plan.distill_of}
        atomic_write_text(done, json.dumps(record, indent=2) + "\n")
        return record
    steps = finished_steps(plan.folder)
    if steps is None or steps[0] < steps[1]:
        code = _logged(train_command(plan, extra), plan.folder, cwd)
        if code != 0:
            raise SweepError(f"run {plan.folder} failed (exit {code}); see {plan.folder / 'train.log'}")
        steps = finished_steps(plan.folder)
        if steps is None or steps[0] < steps[1]:
            raise SweepError(f"run {plan.folder} ended before its step budget; see {plan.folder / 'train.log'}")
    record = {"variant": plan.variant, "env": plan.env, "seed": plan.seed, "steps": steps[0]}
    atomic_write_text(done, json.dumps(record, indent=2) + "\n")
    return record


def scratch_flags(folder: Path) -> dict[str, Any]:
    """Flags that train, from scratch, the architecture a (pruned) SAC run ended with."""
    from edgerl.checkpoint import load_checkpoint

    ckpt = load_checkpoint(folder / "ckpt.pt")
    if ckpt["algo"] != "sac":
        raise ConfigError(f"scratch_of needs a SAC run; {folder} is {ckpt['algo']}")
    nets = ckpt["agent"]["nets"]
    critic = [max(a, b) for a, b in zip(nets["qf1"]["spec"]["kwargs"]["hidden"], nets["qf2"]["spec"]["kwargs"]["hidden"],
                                        strict=True)]
    flags: dict[str, Any] = {"hidden": critic, "actor_hidden": nets["actor"]["spec"]["kwargs"]["hidden"], "prune": "none"}
    if "ofenet" in nets:
        spec = nets["ofenet"]["spec"]["kwargs"]
        flags.update(ofenet=True, ofenet_state_widths=spec["state_widths"], ofenet_action_widths=spec["action_widths"])
    return flags


Runner = Callable[[list[tuple[RunPlan, dict[str, Any]]]], list[dict[str, Any]]]


def local_runner(jobs: int, cwd: str | None = None) -> Runner:
    """Runs on ``jobs`` local workers (each a 1-thread training subprocess)."""
    def run(batch: list[tuple[RunPlan, dict[str, Any]]]) -> list[dict[str, Any]]:
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            futures = [pool.submit(run_plan, plan, extra, cwd) for plan, extra in batch]
            return [f.result() for f in futures]

    return run


def ray_runner(address: str | None, cwd: str | None = None) -> Runner:
    """Runs as Ray tasks of one CPU each on the cluster at ``address`` (a local instance when
    None). Run folders must be on a filesystem every node sees, and edgerl installed there."""
    try:
        import ray
    except ImportError as e:
        raise SweepError("--executor ray needs Ray: pip install 'edgerl[ray]'") from e
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    task = ray.remote(num_cpus=1, max_retries=0)(run_plan)

    def run(batch: list[tuple[RunPlan, dict[str, Any]]]) -> list[dict[str, Any]]:
        return ray.get([task.remote(plan, extra, cwd) for plan, extra in batch])

    return run


def run_all(plans: list[RunPlan], runner: Runner) -> list[dict[str, Any]]:
    """Every run: first the plain variants, then those derived from them (``scratch_of``,
    ``distill_of``)."""
    plain = [p for p in plans if p.scratch_of is None and p.distill_of is None]
    records = runner([(p, {}) for p in plain])
    derived = []
    for p in plans:
        if p.scratch_of is not None:
            derived.append((p, scratch_flags(p.source(p.scratch_of))))
        elif p.distill_of is not None:
            derived.append((p, {}))
    return records + (runner(derived) if derived else [])

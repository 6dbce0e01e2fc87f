"""Sweeps: envs x seeds x variants of ``edgerl train`` flags from a spec file (``spec.py``),
run locally or on Ray and resumed after a kill (``execute.py``), summarised with bootstrap
intervals (``results.py``). ``edgerl sweep SPEC.yaml`` is the command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgerl.sweep.execute import SweepError, local_runner, ray_runner, run_all, sweep_lock
from edgerl.sweep.results import write_results
from edgerl.sweep.spec import RunPlan, SweepSpec, load_spec

__all__ = ["RunPlan", "SweepError", "SweepSpec", "load_spec", "run_sweep"]


def run_sweep(spec: SweepSpec, out: Path, executor: str = "local", jobs: int = 2, address: str | None = None,
              command: str = "", cwd: str | None = None) -> list[dict[str, Any]]:
    """Run (or continue) every run of ``spec`` in ``out``, then write the results; returns the rows.
    Training subprocesses run in ``cwd`` (default: here), so workers import the same edgerl."""
    out = Path(out).resolve()
    cwd = cwd or os.getcwd()
    plans = spec.plans(out)
    with sweep_lock(out):
        if executor == "local":
            runner = local_runner(jobs, cwd)
        elif executor == "ray":
            runner = ray_runner(address, cwd)
        else:
            raise SweepError(f"--executor {executor!r}: choose local or ray")
        run_all(plans, runner)
        return write_results(spec, plans, out, command)

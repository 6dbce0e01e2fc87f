#!/usr/bin/env python
"""Regenerate ``docs/benchmarks/``: latency vs MACs of dense and group-pruned policies, return vs
deployed parameters of the training comparisons, and surviving width per layer over training.

    .venv/bin/python tools/make_reports.py                               # everything
    .venv/bin/python tools/make_reports.py --min-queries 2000 --min-seconds 3
    .venv/bin/python tools/make_reports.py --parts training,widths       # no timing
    .venv/bin/python tools/make_reports.py --parts widths --runs runs/compare/Hopper-v5/gradual-0.8/seed1

Parts (``--parts``):

* ``latency``: freshly initialised SAC actors (obs 17 -> hidden -> act 6, HalfCheetah's dims) and
  Impala-CNN PPO networks (3x64x64 frames, 15 actions) are pruned by groups (L1, ``GradualPruner``)
  to each ``--ratios`` channel ratio (Impala also with ``round_to``), written as policy
  checkpoints and timed by ``edgerl.bench.run_bench``: batch 1, ``--threads`` thread(s), every
  model of a family interleaved with its dense baseline, per backend. Weights are random: latency
  depends on shapes only. Writes ``latency.md``, ``latency_vs_macs.png`` and ``latency.json``
  (the bench reports, with device and library versions).
* ``training``: ``runs/compare*/results.json`` (``tools/compare_pruning.py``) and
  ``runs/gates*/results.json`` (``tools/measure_gates.py``) as tables and a plot of return vs
  deployed actor parameters per environment: ``training.md``, ``training_return_vs_params.png``.
* ``widths``: the width history a run's ``ckpt.pt`` keeps (``hooks.gates.history`` or
  ``hooks.gradual.history``) as step lines per layer: ``widths.md``, ``widths-<run>.png``. A
  gradual SAC run saved without a history is reconstructed from its stored schedule (exactly what
  ``GradualPruner`` does on every SAC step) and shown only if the reconstruction ends at the
  checkpoint's actual widths; the doc says which curves are reconstructed.

``README.md`` indexes the docs. Every number in the docs is measured (or read from run files) by
the command that each doc names.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edgerl.bench.reports import PARTS, ReportOptions, make_reports  # noqa: E402
from edgerl.bench.reports.common import python_command  # noqa: E402
from edgerl.bench.reports.families import FAMILIES  # noqa: E402
from edgerl.errors import EdgerlError  # noqa: E402


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        return [kind(x) for x in text.split(",") if x.strip()]

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring); each sets the ``ReportOptions`` field of its name."""
    d = ReportOptions()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=d.out, help="output folder (default: %(default)s)")
    p.add_argument("--parts", type=_csv(str), default=list(d.parts), help=f"subset of {','.join(PARTS)}")
    g = p.add_argument_group("latency")
    g.add_argument("--families", type=_csv(str), default=list(d.families), help=f"subset of {','.join(FAMILIES)}")
    g.add_argument("--ratios", type=_csv(float), default=list(d.ratios), help="channel ratios (dense is always in)")
    g.add_argument("--round-to", type=int, default=d.round_to, help="also time Impala variants with round_to=N (0: none)")
    g.add_argument("--backends", type=_csv(str), default=list(d.backends), help="bench backends")
    g.add_argument("--threads", type=int, default=d.threads, help="intra-op threads of torch and ONNX Runtime")
    g.add_argument("--min-queries", type=int, default=d.min_queries, help="timed calls per model and backend, at least")
    g.add_argument("--min-seconds", type=float, default=d.min_seconds,
                   help="timed seconds per model and backend, at least")
    g.add_argument("--warmup", type=int, default=d.warmup, help="untimed calls per model and backend first")
    g.add_argument("--rounds", type=int, default=d.rounds, help="interleaved rounds (order alternates)")
    g.add_argument("--seed", type=int, default=d.seed, help="seeds the weights and the random observations")
    g.add_argument("--impala-json", default=d.impala_json,
                   help="take the Impala rows from this tools/bench_impala.py JSON instead of timing them")
    g = p.add_argument_group("training and widths")
    g.add_argument("--compare", nargs="*", default=list(d.compare), help="globs of compare_pruning.py folders")
    g.add_argument("--gates", nargs="*", default=list(d.gates), help="globs of measure_gates.py folders")
    g.add_argument("--runs", nargs="+", default=d.runs, help="run folders for the width plots (default: every run "
                   "under --compare/--gates folders with a width history)")
    g.add_argument("--no-reconstruct", action="store_true",
                   help="do not replay the schedule of gradual runs saved without a width history")
    args = p.parse_args(argv)
    bad = [x for x in args.parts if x not in PARTS] + [f for f in args.families if f not in FAMILIES]
    if bad:
        p.error(f"unknown {bad}; --parts from {PARTS}, --families from {tuple(FAMILIES)}")
    if any(not 0 < r < 1 for r in args.ratios):
        p.error(f"--ratios must lie in (0, 1), got {args.ratios}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Regenerate the chosen parts and the index."""
    args = parse_args(argv)
    raw = sys.argv[1:] if argv is None else argv
    command = f"{python_command(REPO)} tools/make_reports.py {shlex.join(raw)}".strip()

    def log(s: str) -> None:
        print(s, flush=True)

    try:
        make_reports(ReportOptions(**vars(args)), command, REPO, log)
    except EdgerlError as e:
        raise SystemExit(str(e)) from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The ``docs/benchmarks/`` pages that ``tools/make_reports.py`` regenerates, and the per-run
summaries the training comparisons it reads add to their sweeps' results.

- ``families.py``: the synthetic dense and group-pruned policies whose latency is timed.
- ``latency.py``: their batch-1 latency vs MACs (``latency.md``, ``latency_vs_macs.png``, ``latency.json``).
- ``training.py``: return vs deployed parameters of the training comparisons (``training.md``).
- ``widths.py``: surviving width per layer over training, from run checkpoints (``widths.md``).
- ``measure_gates.py``: a gate-pruning run's deployed cost, returns and widths (``tools/measure_gates.py``).
- ``compare_pruning.py``: a pruning comparison's actor sizes and returns (``tools/compare_pruning.py``).
- ``index.py``: ``make_reports`` (the chosen parts, then the ``README.md`` index).
- ``options.py``: ``ReportOptions``, what the tool's flags set; ``common.py``: small shared helpers.

matplotlib (the plots) and torch are imported only by the code paths that need them.
"""

from __future__ import annotations

from edgerl.bench.reports.index import make_reports
from edgerl.bench.reports.options import PARTS, ReportOptions

__all__ = ["PARTS", "ReportOptions", "make_reports"]

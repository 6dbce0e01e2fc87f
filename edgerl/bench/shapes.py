"""The network shapes the synthetic latency benchmarks time (``tools/make_reports.py``,
``tools/bench_impala.py``): weights are random there, so these sizes are all that matters."""

from __future__ import annotations

OBS_DIM, ACT_DIM = 17, 6
"""HalfCheetah-v5's observation and action sizes (the SAC actor families)."""
FRAME = (3, 64, 64)
"""Procgen-like frames (channels, height, width) of the Impala families."""
N_ACTIONS = 15
"""Procgen's action count (the Impala-CNN policies' logits)."""
IMPALA_HIDDEN = [256]
"""The Impala-CNN policies' hidden layer after the CNN."""

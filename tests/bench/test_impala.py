"""edgerl.bench.impala (tools/bench_impala.py): the models (pruned by groups), their export and
parity check, the latency ratios, the goal, the table and the page. No timing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edgerl.bench import impala
from edgerl.bench.impala import DENSE1, DENSE3, VARIANTS, Variant
from edgerl.bench.shapes import IMPALA_HIDDEN
from edgerl.prune.gradual import target_width

SHAPE = (3, 16, 16)


def test_a_pruned_model_exports_with_the_same_actions(tmp_path):
    dense = impala.build(Variant("d", 1), SHAPE)
    pruned = impala.build(Variant("p", 1, 0.5, 8), SHAPE)
    dense_channels = [s[0] for s in dense.spec()["encoder"]["kwargs"]["channels"]]
    channels = [s[0] for s in pruned.spec()["encoder"]["kwargs"]["channels"]]
    assert channels == [target_width(c, 0.5, 8) for c in dense_channels] == [8, 16, 16]
    assert pruned.spec()["encoder"]["kwargs"]["hidden"] == [target_width(h, 0.5, 8) for h in IMPALA_HIDDEN]
    assert pruned.actor.out_features == impala.N_ACTIONS  # the heads are never pruned
    path = tmp_path / "p.onnx"
    assert impala.export(pruned, SHAPE, path, "legacy") == "legacy"
    frames = np.random.default_rng(0).integers(0, 256, size=(8, *SHAPE), dtype=np.uint8)
    assert impala.check_parity(pruned, path, frames) == 0.0


def _rows() -> list[dict[str, Any]]:
    rows = [{"shape": [3, 64, 64], "model": v.label, "tau": v.tau, "ratio": v.ratio, "round_to": v.round_to,
             "channels": [16, 32, 32], "params": 2_000_000, "macs": 50e6, "p50_us": 1000.0, "p90_us": 1100.0,
             "p99_us": 1200.0} for v in VARIANTS]
    by = {r["model"]: r for r in rows}
    by[DENSE1].update(p50_us=200.0)
    by["tau=3 groups 0.8"].update(p50_us=150.0)  # 0.15x dense tau=3: goal missed
    by["tau=3 groups 0.8 round_to=8"].update(p50_us=90.0)  # 0.09x dense tau=3 and below dense tau=1: met
    impala.add_ratios(rows)
    return rows


def test_ratios_goals_table_and_page():
    rows = _rows()
    assert rows[2]["vs_dense3"]["p50"] == pytest.approx(0.15) and rows[2]["vs_dense1"]["p50"] == pytest.approx(0.75)
    assert rows[1]["vs_dense3"] == {"p50": 1.0, "p90": 1.0, "p99": 1.0}
    goals = impala.goals(rows)
    assert [(g["model"], g["met"]) for g in goals] == [("tau=3 groups 0.8", False), ("tau=3 groups 0.8 round_to=8", True)]
    assert impala.goal_line(goals[1]) == ("goal 3x64x64 tau=3 groups 0.8 round_to=8: 0.090x dense tau=3, 0.45x dense "
                                          "tau=1 -> met")
    md = impala.table(rows)
    assert f"| 3x64x64 | {DENSE3} | 16/32/32 | 2.000 M | 50.0 M | 1000 | 1100 | 1200 | 1.000 | 5.00 |" in md
    report = {"command": "python tools/bench_impala.py", "rows": rows, "goals": goals,
              "device": {"date": "d", "cpu_model": "cpu", "cpu_count": 2, "os": "linux", "python": "3.11",
                         "versions": {"onnxruntime": "1"}},
              "config": {"rounds": 2, "min_queries": 3, "min_seconds": 0.1, "warmup": 4, "exporter": "auto"},
              "load_average": {"before": [1.0], "after": [2.0]}}
    page = impala.markdown(report)
    assert "python tools/bench_impala.py" in page and md in page and "onnxruntime 1" in page
    assert "- 3x64x64, tau=3 groups 0.8: p50 0.150x dense tau=3, 0.75x dense tau=1: NOT met" in page

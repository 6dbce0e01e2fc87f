"""edgerl.bench.image_precision and the page of tools/bench_precision.py: the image goal, its table,
the page of both parts, and grouping checkpoints by env. No timing, no ALE."""

from __future__ import annotations

from typing import Any

import pytest

from edgerl.bench.image_precision import GOAL_AGREEMENT, image_goals, image_markdown
from edgerl.bench.precision import models_by_env, precision_page


def _rows() -> list[dict[str, Any]]:
    rows = []
    for model, int8_p50, agreement in (("fast", 50.0, 0.995), ("disagrees", 50.0, GOAL_AGREEMENT - 0.01),
                                       ("slow", 70.0, 1.0)):
        for precision, p50 in (("fp32", 100.0), ("fp16", 120.0), ("int8", int8_p50)):
            rows.append({"model": model, "precision": precision, "onnx_bytes": 2048, "n_held_out": 8,
                         "agreement": agreement if precision == "int8" else 1.0,
                         "p50_us": p50, "p90_us": 2 * p50, "p99_us": 4 * p50})
    image_goals(rows)
    return rows


def test_image_goal_needs_the_speed_and_the_agreement():
    rows = _rows()
    assert [(r["model"], r["goal_met"]) for r in rows if "goal_met" in r] == [
        ("fast", True), ("disagrees", False), ("slow", False)]
    assert rows[1]["p50_vs_fp32"] == pytest.approx(1.2) and rows[2]["p99_vs_fp32"] == pytest.approx(0.5)
    md = image_markdown(rows)
    assert "| fast | int8 | 50 | 100 | 200 | 0.50 | 2 | 99.50% | met |" in md
    assert "| slow | int8 | 70 | 140 | 280 | 0.70 | 2 | 100.00% | MISSED |" in md
    assert "| fast | fp32 | 100 | 200 | 400 | 1.00 | 2 | 100.00% |  |" in md


def test_page_of_both_parts():
    mlp_row = {"model": "dense", "precision": "fp32", "backend": "ort-cpu", "p50_us": 5.0, "p90_us": 6.0,
               "p99_us": 7.0, "file_bytes": 1024, "error": {}}
    out = {"command": "python tools/bench_precision.py --sac a=b", "device": {"date": "d", "versions": {}},
           "image": _rows(), "mlp": {"Hopper-v5": {"rows": [mlp_row], "plot": "docs/p_Hopper-v5.png"}}}
    page = precision_page(out)
    assert page.startswith("`python tools/bench_precision.py --sac a=b`\n\nDevice: ")
    assert "## Image policies (Impala-CNN, batch 1, 1 thread, ORT CPU)\n\n" + image_markdown(out["image"]) in page
    assert "## MLP policies (SAC actors), Hopper-v5" in page and "| dense | fp32 | ort-cpu | 5.0 |" in page
    assert page.endswith("![return vs p99, Hopper-v5](p_Hopper-v5.png)\n\n")
    assert "Image policies" not in precision_page({k: v for k, v in out.items() if k != "image"})


def test_models_are_grouped_by_their_env(ckpt_pair):
    pruned, dense = ckpt_pair
    groups = models_by_env([f"compact={pruned}", str(dense.parent)])
    assert groups == {"Hopper-v5": [("compact", str(pruned)), ("dense", str(dense.parent))]}

"""edgerl.bench.learning_curve (tools/learn_ppo.py): a run's curve from metrics.csv and its page."""

from __future__ import annotations

import math

from edgerl.algos.run import MetricsLog
from edgerl.bench.learning_curve import curve_markdown, format_curve, read_curve


def test_curve_rows_table_and_page(tmp_path):
    assert read_curve(tmp_path / "metrics.csv") == []  # a run that has not logged yet
    log = MetricsLog(tmp_path / "metrics.csv")
    log.write(step=1000, wall_s=60.0, sps=300.0, train_return=1.5)
    log.write(step=2000, wall_s=120.0, sps=310.0, train_return=2.0, eval_return=3.5, eval_std=1.25, params=1000)
    rows = read_curve(tmp_path / "metrics.csv")
    assert rows[1] == {"step": 2000.0, "wall_s": 120.0, "sps": 310.0, "train_return": 2.0, "eval_return": 3.5,
                       "eval_std": 1.25, "params": 1000.0}
    assert math.isnan(rows[0]["eval_return"]) and math.isnan(rows[0]["params"])
    assert format_curve(rows).splitlines()[3] == "| 2000 | 2.0 | 310 | 2.0 | 3.5 +- 1.2 |"
    finals = {"latest policy (sampled, as trained)": {"mean": 4.0, "std": 1.0, "games": 3, "scores": [3, 4, 5]}}
    page = curve_markdown("ALE/Breakout-v5", False, "edgerl train x", rows, finals, 3, "edgerl train paper")
    assert page.startswith("# PPO learning curve: ALE/Breakout-v5 (partial, 2 points)\n\nCommand: `edgerl train x`")
    assert "Latest checkpoint vs chance (3 games each):\n\n- latest policy (sampled, as trained): 4.0 +- 1.0 over " \
           "3 games (same seeds)\n" in page
    assert page.endswith("`edgerl train paper`")
    assert "vs chance" not in curve_markdown("e", True, "c", rows, {}, 0, "p")

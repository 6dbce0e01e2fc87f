"""edgerl.algos.run: reading back the metrics.csv a run writes."""

from __future__ import annotations

from edgerl.algos.run import METRIC_COLUMNS, MetricsLog, logged_evals, read_metrics


def test_metrics_are_read_back_as_written(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv")
    log.write(step=10, train_return=1.5)
    log.write(step=20, eval_return=2.25, eval_std=0.5)
    rows = read_metrics(tmp_path / "metrics.csv")
    assert list(rows[0]) == METRIC_COLUMNS and rows[0]["train_return"] == "1.5" and rows[0]["eval_return"] == ""
    assert logged_evals(tmp_path / "metrics.csv") == [rows[1]] and rows[1]["eval_return"] == "2.25"

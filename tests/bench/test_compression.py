"""The compression table's page: summaries over seeds, % of dense, and resumable results."""

from __future__ import annotations

import json

import pytest

from edgerl.bench import compression as c


def _row(variant: str, seed: int, returns: list[float], params: int = 1000) -> dict:
    return {"env": "Hopper-v5", "variant": variant, "seed": seed, "steps": 100, "episodes": len(returns),
            "eval_seed": 10_000, "returns": returns, "return_mean": sum(returns) / len(returns), "params": params,
            "macs": params - 10, "ort_p50_us": 9.0, "train_wall_s": 60.0}


def test_variants_and_widths():
    vs = c.variants()
    assert c.pruned_width() == 102 and vs["scratch-gradual"].args[-1] == "102,102"
    assert vs["distill-gradual"].teacher == "dense" and vs["distill-gradual"].widths == (102, 102)
    assert "--prune-nets" in vs["gradual-actor"].args and vs["gradual-all"].args[-1] == "all"


def test_summary_uses_seeds_when_there_are_several(tmp_path):
    rows = [_row("dense", 1, [100.0, 110.0]), _row("dense", 2, [120.0, 130.0]),
            _row("distill-32", 1, [90.0, 100.0], params=1500)]
    (s_dense, s_student), = c.summarise(rows).values()
    assert s_dense["ci_over"] == "seeds" and s_dense["return"]["mean"] == pytest.approx(115.0)
    assert s_student["ci_over"] == "episodes" and s_student["pct_dense"] == pytest.approx(100 * 95.0 / 115.0)
    page = c.render_markdown(rows, "python tools/compression_table.py", ["Hopper-v5 seed 2: distill-32"])
    assert "| distilled 32x32 from dense | 1 | 100 | 95.0 [" in page and "| 83% |" in page
    assert "Hopper-v5 seed 2: distill-32" in page


def test_finished_runs_are_skipped(tmp_path):
    key = c.RunKey("Hopper-v5", "dense", 1)
    path = c.result_path(tmp_path, key)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_row("dense", 1, [1.0])))
    # Nothing to train: the queue's only run has a result (a run would fail: no runs folder exists).
    c.run_queue([key], 100, tmp_path, tmp_path / "missing", log=lambda _: None)
    assert c.load_results(tmp_path)[0]["variant"] == "dense"

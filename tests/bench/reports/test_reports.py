"""edgerl.bench.reports (tools/make_reports.py): model variants, latency rows and doc, training and
width reports (no timing), and the tool's flags."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from edgerl.bench.reports.families import (
    ACT_DIM,
    FAMILIES,
    OBS_DIM,
    Variant,
    build_variant,
    net_widths,
    variants,
    write_policy,
)
from edgerl.bench.reports.latency import impala_json_rows, latency_doc, latency_rows, plot_latency
from edgerl.bench.reports.training import find_sources, plot_training, points, training_doc
from edgerl.bench.reports.widths import width_history
from edgerl.prune.gradual import target_width

REPO = Path(__file__).resolve().parents[3]
pytest.importorskip("matplotlib", reason="the report plots need matplotlib: pip install matplotlib")


@pytest.fixture(scope="module")
def tool() -> Iterator[Any]:
    """tools/make_reports.py, loaded by file path (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_reports", REPO / "tools" / "make_reports.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_pruned_variants_are_policy_checkpoints(tmp_path):
    from edgerl.checkpoint import load_checkpoint
    from edgerl.export.policy import policy_from_checkpoint

    sac = FAMILIES["sac256"]
    labels = [v.label for v in variants(sac, [0.5, 0.8], round_to=8)]
    assert labels == ["sac256-dense", "sac256-0.5", "sac256-0.8"]  # no round_to variants for MLPs
    d = write_policy(Variant(sac, 0.8), tmp_path / "a.pt")
    assert d["widths"] == [target_width(256, 0.8)] * 2 == [51, 51]
    policy = policy_from_checkpoint(load_checkpoint(tmp_path / "a.pt"))
    assert policy(torch.zeros(1, OBS_DIM)).shape == (1, ACT_DIM)
    _, _, net, _ = build_variant(Variant(FAMILIES["impala1"], 0.8, 8))
    assert net_widths(net)[0] == [8, 8, 8]


def _report(p50: dict[str, float]) -> dict[str, Any]:
    models = [{"label": f"{k}.pt", "path": f"/tmp/x/{k}.pt", "params": 100, "macs": 90, "graph_params": 80,
               "graph_macs": 70} for k in p50]
    results = [{"model": f"{k}.pt", "role": "baseline" if k.endswith("dense") else "model", "backend": "ort-cpu",
                "batch": 1, "p50_us": v, "p90_us": 2 * v, "p99_us": 3 * v, "max_us": 4 * v, "n": 10}
               for k, v in p50.items()]
    return {"device": {"date": "d", "versions": {"torch": "x"}}, "models": models, "results": results,
            "skipped": [], "notes": []}


def test_latency_rows_and_doc(tmp_path):
    fam = {"family": "sac256", "title": "t", "report": _report({"sac256-0.5": 5.0, "sac256-dense": 10.0}),
           "variants": [{"label": "sac256-0.5", "ratio": 0.5, "round_to": None, "widths": [128, 128],
                         "path": "sac256-0.5.pt"},
                        {"label": "sac256-dense", "ratio": 0.0, "round_to": None, "widths": [256, 256],
                         "path": "sac256-dense.pt"}], "duplicates": [], "loadavg": None}
    rows = latency_rows([fam])
    assert [r["model"] for r in rows] == ["sac256-dense", "sac256-0.5"]  # dense first
    assert rows[1]["vs_dense"]["p50"] == pytest.approx(0.5) and rows[1]["params"] == 80
    data = {"command": "python tools/make_reports.py --x", "families": [fam],
            "config": {"threads": 1, "warmup": 1, "min_queries": 2, "min_seconds": 0.1, "rounds": 3}}
    doc = latency_doc(data, rows)
    assert "python tools/make_reports.py --x" in doc and "| sac256-0.5 | 0.5 |" in doc and "0.500" in doc
    plot_latency(rows, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_impala_json_rows(tmp_path):
    def row(tau: int, ratio: float, p50: float, rt: int | None = None) -> dict[str, Any]:
        return {"shape": [3, 64, 64], "tau": tau, "ratio": ratio, "round_to": rt, "channels": [8, 8, 8],
                "inner": [[8, 8]] * 3, "hidden": [256], "params": 1, "macs": 2, "p50_us": p50, "p90_us": p50,
                "p99_us": p50, "max_us": p50, "n": 5}

    path = tmp_path / "impala.json"
    path.write_text(json.dumps({"command": "c", "device": {}, "rows": [row(3, 0.0, 100.0), row(3, 0.8, 10.0, 8)]}))
    rows, _ = impala_json_rows(path)
    assert [r["model"] for r in rows] == ["impala3-dense", "impala3-0.8-rt8"]
    assert rows[1]["vs_dense"]["p50"] == pytest.approx(0.1)


def test_training_doc_says_what_is_missing(tmp_path):
    run = tmp_path / "runs" / "compare_x" / "Hopper-v5" / "dense" / "seed1"
    run.mkdir(parents=True)
    (run / "train.log").write_text("")
    sources = find_sources([("runs/compare*", "compare"), ("runs/gates*", "gates")], tmp_path)
    doc = training_doc(sources, "cmd", tmp_path, {"versions": {}})
    assert "no `results.json` yet" in doc and "Hopper-v5/dense/seed1 (no checkpoint yet)" in doc
    assert "tools/measure_gates.py" in doc  # how to produce the missing gate results
    assert "No training comparison results" in training_doc([], "cmd", tmp_path, {"versions": {}})


def test_training_tables_and_plot(tmp_path):
    folder = tmp_path / "runs" / "compare_y"
    folder.mkdir(parents=True)
    run = {"seed": 1, "final_return": 10.0, "last3_return": 9.0, "actor_params": 1000, "actor_nonzero_params": 900,
           "actor_macs": 950, "actor_widths": [10, 10], "wall_s": 60.0}
    (folder / "results.json").write_text(json.dumps({"args": {"steps": 5}, "results": {"Hopper-v5": {
        "dense": [run, {**run, "seed": 2, "last3_return": 11.0}], "gradual-0.8": [{**run, "actor_params": 100}]}}}))
    sources = find_sources([("runs/compare*", "compare")], tmp_path)
    pts = [p for s in sources for p in points(s)]
    doc = training_doc(sources, "cmd", tmp_path, {"versions": {}})
    assert "| Hopper-v5 | dense | 2 | 10 ± 1 |" in doc and "1,000 (900)" in doc
    plot_training(pts, tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 0


def _gradual_ckpt(final_width: int) -> dict[str, Any]:
    sched = {"kind": "cubic", "final_ratio": 0.5, "total_steps": 100, "start": 0.2, "end": 0.8, "every": 10}
    return {"algo": "sac", "counters": {"global_step": 100},
            "hooks": {"gradual": {"version": 1, "original_widths": {"actor": {"trunk.0": 64}}, "schedule": sched,
                                  "applied_ratio": 0.5, "importance": "l1", "round_to": None}},
            "agent": {"nets": {"actor": {"state": {"trunk.0.weight": torch.zeros(final_width, 17),
                                                   "mean.weight": torch.zeros(6, final_width)}}}}}


def test_width_histories():
    hook, hist, why = width_history({"hooks": {"gates": {"history": [[0, {"a": 4}], [50, {"a": 2}]]}}})
    assert hook == "gates" and hist == [[0, {"a": 4}], [50, {"a": 2}]] and why.startswith("recorded")
    nested = {"hooks": {"gradual": {"history": [[0, {"actor": {"trunk.0": 8}}]]}}}
    assert width_history(nested)[1] == [[0, {"actor/trunk.0": 8}]]
    hook, hist, why = width_history(_gradual_ckpt(32))
    assert hook == "gradual" and why.startswith("reconstructed")
    assert hist[0] == [0, {"actor/trunk.0": 64}] and hist[-1][1] == {"actor/trunk.0": 32}
    assert all(a[0] < b[0] and a[1]["actor/trunk.0"] > b[1]["actor/trunk.0"] for a, b in zip(hist, hist[1:], strict=False))
    assert width_history(_gradual_ckpt(40))[1] is None  # replay disagrees with the checkpoint: not shown
    assert width_history(_gradual_ckpt(32), reconstruct=False)[1] is None
    assert width_history({"hooks": {}})[0] is None


def test_replay_is_checked_against_logged_params(tmp_path):
    # one hidden layer 17 -> w -> heads of 6: 18 w + 2 (6 w + 6) parameters
    (tmp_path / "metrics.csv").write_text("step,eval_return,params\n0,1,1932\n100,2,972\n")
    hook, hist, why = width_history(_gradual_ckpt(32), run_dir=tmp_path)
    assert hist is not None and "metrics.csv at 2 evaluation(s) match" in why
    (tmp_path / "metrics.csv").write_text("step,eval_return,params\n100,2,999\n")
    hook, hist, why = width_history(_gradual_ckpt(32), run_dir=tmp_path)
    assert hist is None and "logs 999 actor parameters at step 100" in why


def test_main_widths_part(tool, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({**_gradual_ckpt(32), "versions": {"torch": "x"}}, run / "ckpt.pt")
    out = tmp_path / "docs"
    assert tool.main(["--parts", "widths", "--runs", str(run), "--out", str(out)]) == 0
    doc = (out / "widths.md").read_text()
    assert "--parts widths" in doc and "| actor/trunk.0 | 64 | 32 | 50% |" in doc
    assert len(list(out.glob("widths-*.png"))) == 1 and "widths.md" in (out / "README.md").read_text()


def test_tool_flags_mirror_the_options(tool, capsys):
    from edgerl.bench.reports import ReportOptions

    args = tool.parse_args([])
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in vars(ReportOptions()).items()} == vars(args)
    assert ReportOptions(**vars(tool.parse_args(["--parts", "widths", "--ratios", "0.7"]))).ratios == [0.7]
    with pytest.raises(SystemExit) as e:
        tool.parse_args(["--help"])
    assert e.value.code == 0 and "--no-reconstruct" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        tool.parse_args(["--parts", "timing"])
    assert e.value.code == 2

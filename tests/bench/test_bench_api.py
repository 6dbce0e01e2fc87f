"""run_bench on a checkpoint pair and on a bundle: report structure and internal consistency."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgerl.bench.api import OVERHEAD_GOAL, run_bench
from edgerl.bench.report_format import format_markdown, format_table
from edgerl.errors import CheckpointError, ConfigError
from edgerl.runtime.backends import get_backend
from tests.bench.conftest import DENSE, FAST, KEPT, assert_percentiles_ordered

RESULT_KEYS = {"model", "backend", "batch", "params", "macs", "p50_us", "p90_us", "p99_us", "max_us", "n"}
RATIO_KEYS = {"backend", "batch", "p50", "p90", "p99"}


@pytest.fixture(scope="module")
def report(ckpt_pair) -> dict[str, Any]:
    pruned, dense = ckpt_pair
    return run_bench([pruned], dense, backends=["torch", "ort-cpu", "trt"], batches=[1, 4], threads=1, **FAST)


def test_report_shape(report):
    assert {"device", "results", "ratios"} <= set(report)
    assert {"cpu_model", "cpu_count", "threads", "versions", "os", "python"} <= set(report["device"])
    assert {"numpy", "onnxruntime", "torch"} <= set(report["device"]["versions"])
    for row in report["results"]:
        assert RESULT_KEYS <= set(row)
        assert_percentiles_ordered(row)
        assert row["n"] >= FAST["min_queries"]
    for r in report["ratios"]:
        assert RATIO_KEYS <= set(r)
    json.dumps(report)  # JSON-able as is


def test_every_backend_and_batch_measured_or_skipped(report):
    measured = {(r["model"], r["backend"], r["batch"]) for r in report["results"]}
    for model in ("pruned/ckpt.pt", "dense/ckpt.pt"):
        for backend in ("torch", "ort-cpu"):
            for batch in (1, 4):
                assert (model, backend, batch) in measured
    if not get_backend("trt").available()[0]:
        skip = [s for s in report["skipped"] if s["backend"] == "trt"]
        assert len(skip) == 1 and skip[0]["reason"] == get_backend("trt").available()[1]
        assert "TensorRT" in skip[0]["reason"] and not any(r["backend"] == "trt" for r in report["results"])


def test_ratios_come_from_the_same_results(report):
    rows = {(r["role"], r["backend"], r["batch"]): r for r in report["results"]}
    assert len(report["ratios"]) == 4
    for ratio in report["ratios"]:
        m, b = rows["model", ratio["backend"], ratio["batch"]], rows["baseline", ratio["backend"], ratio["batch"]]
        for p in ("p50", "p90", "p99"):
            assert ratio[p] == pytest.approx(m[f"{p}_us"] / b[f"{p}_us"])


def test_pruned_is_smaller(report):
    models = {m["role"]: m for m in report["models"]}
    small, big = models["model"], models["baseline"]
    assert small["params"] < big["params"] and small["macs"] < big["macs"]
    assert small["graph_params"] < big["graph_params"] and small["graph_macs"] < big["graph_macs"]
    assert small["file_bytes"] < big["file_bytes"]
    assert big["graph_macs"] == 11 * DENSE[0] + DENSE[0] * DENSE[1] + DENSE[1] * 3
    assert small["graph_macs"] == 11 * KEPT[0] + KEPT[0] * KEPT[1] + KEPT[1] * 3
    for row in report["results"]:
        assert (row["params"], row["macs"]) == (models[row["role"]]["params"], models[row["role"]]["macs"])


def test_overhead_entry(report):
    (entry,) = report["overhead"]
    assert entry["model"] == "pruned/ckpt.pt" and entry["threads"] == 1 and entry["goal"] == OVERHEAD_GOAL
    for k in ("act", "bare", "backend_run_single"):
        assert_percentiles_ordered(entry[k])
    assert entry["ratio"] == pytest.approx(entry["act"]["p50_us"] / entry["bare"]["p50_us"])
    assert entry["within_goal"] == (entry["ratio"] <= OVERHEAD_GOAL)


def test_text_reports(report):
    table = format_table(report)
    assert "pruned/ckpt.pt" in table and "dense/ckpt.pt (baseline)" in table and "p99 us" in table
    assert "Policy.act" in table
    md = format_markdown(report)
    assert md.count("| pruned/ckpt.pt |") == 4 and "| model / baseline |" in md


def test_bundle_model_against_checkpoint(bundle, ckpt_pair):
    rep = run_bench([bundle], ckpt_pair[1], backends=["torch", "ort-cpu"], batches=[1], **FAST)
    (skip,) = rep["skipped"]
    assert skip["backend"] == "torch" and skip["model"] == "bundle-x86-cpu" and "ONNX model folder" in skip["reason"]
    assert {(r["model"], r["backend"]) for r in rep["results"]} == {
        ("bundle-x86-cpu", "ort-cpu"), ("ckpt.pt", "torch"), ("ckpt.pt", "ort-cpu")}
    assert [(r["backend"], r["batch"]) for r in rep["ratios"]] == [("ort-cpu", 1)]
    models = {m["label"]: m for m in rep["models"]}
    assert models["bundle-x86-cpu"]["kind"] == "onnx" and models["bundle-x86-cpu"]["bundle"]
    assert models["bundle-x86-cpu"]["macs"] == 11 * KEPT[0] + KEPT[0] * KEPT[1] + KEPT[1] * 3
    assert any("graph_params" in n for n in rep["notes"])  # mixed kinds: counts explained
    assert rep["overhead"][0]["threads"] == 1  # the x86-cpu profile's threads


@pytest.mark.parametrize("kw, match", [
    ({"backends": ["torch", "tpu"]}, "unknown backend 'tpu'"),
    ({"batches": [0]}, "--batch must list positive integers"),
    ({"threads": 0}, "--threads must be an integer >= 1"),
    ({"min_queries": 0}, "--min-queries"),
])
def test_bad_options(ckpt_pair, kw, match):
    with pytest.raises(ConfigError, match=match):
        run_bench([ckpt_pair[0]], **kw)


def test_bad_models(tmp_path, ckpt_pair):
    with pytest.raises(ConfigError, match="no such file or folder"):
        run_bench([tmp_path / "missing.pt"], ckpt_pair[1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="neither ckpt.pt nor policy.onnx"):
        run_bench([ckpt_pair[0]], tmp_path / "empty")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="junk.pt"):
        run_bench([tmp_path / "junk.pt"])


def test_c_backend_on_checkpoints(ckpt_pair, tmp_path, monkeypatch):
    """``--backends c`` exports each checkpoint as C beside its ONNX and times the built library
    against ORT in the same interleaved run; the dense/compact ratio is reported for it too."""
    if not get_backend("c").available()[0]:
        pytest.skip(get_backend("c").available()[1])
    monkeypatch.setenv("EDGERL_NATIVE_CACHE", str(tmp_path / "cache"))
    rep = run_bench([ckpt_pair[0]], ckpt_pair[1], backends=["ort-cpu", "c"], batches=[1], overhead=False, **FAST)
    rows = {(r["model"], r["backend"]) for r in rep["results"]}
    assert rows == {(m, b) for m in ("pruned/ckpt.pt", "dense/ckpt.pt") for b in ("ort-cpu", "c")}
    assert not rep["skipped"] and {r["backend"] for r in rep["ratios"]} == {"ort-cpu", "c"}
    assert all(r["p50_us"] > 0 for r in rep["results"]) and len(list((tmp_path / "cache").glob("*.so"))) == 2


def test_c_backend_skips_a_cnn_policy_with_the_exports_reason(tmp_path):
    pytest.importorskip("ale_py", reason="the image agents need the Atari extra: pip install 'edgerl[atari]'")
    from tests.export.test_image_agents import _image_ckpt

    path, _ = _image_ckpt(tmp_path / "ckpt.pt", "dqn")
    rep = run_bench([path], None, backends=["ort-cpu", "c"], batches=[1], overhead=False, **FAST)
    (skip,) = rep["skipped"]
    assert skip["backend"] == "c" and skip["reason"].startswith("no C policy: C export takes vector observations")
    assert [r["backend"] for r in rep["results"]] == ["ort-cpu"]

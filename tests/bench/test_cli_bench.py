"""``edgerl bench`` as a user runs it (subprocess), on a checkpoint pair and on a bundle."""

from __future__ import annotations

import json

import pytest

from tests.bench.conftest import FAST_CLI
from tests.conftest import run_cli


def test_cli_checkpoint_pair(ckpt_pair, tmp_path):
    pruned, dense = ckpt_pair
    out = tmp_path / "bench.json"
    proc = run_cli("bench", str(pruned), "--baseline", str(dense), "--backends", "torch,ort-cpu,trt",
                   "--batch", "1,2", "--json", str(out), *FAST_CLI)
    report = json.loads(out.read_text())
    assert {"device", "results", "ratios", "overhead", "skipped"} <= set(report)
    assert len(report["results"]) == 8 and len(report["ratios"]) == 4
    assert "ratios (model / baseline):" in proc.stdout and "runtime overhead:" in proc.stdout
    assert "p50 us" in proc.stdout and "edgerl bench: timing" in proc.stderr
    if any(s["backend"] == "trt" for s in report["skipped"]):
        assert "skipped:" in proc.stdout and "trt:" in proc.stdout


def test_cli_bundle_markdown(bundle, tmp_path):
    md = tmp_path / "bench.md"
    proc = run_cli("bench", str(bundle), "--backends", "torch,ort-cpu", "--markdown", str(md), "--quiet", *FAST_CLI)
    assert proc.stderr == ""
    text = md.read_text()
    assert "| bundle-x86-cpu | ort-cpu | 1 |" in text and "**Skipped:**" in text and "torch for bundle-x86-cpu" in text
    proc = run_cli("bench", str(bundle), "--backends", "ort-cpu", "--no-overhead", "--markdown", "--quiet", *FAST_CLI)
    assert proc.stdout.startswith("**Device:**") and "Runtime overhead" not in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["missing.pt"], "missing.pt: no such file or folder"),
    (["."], "folder holds neither ckpt.pt nor policy.onnx + contract.json"),
    (["--backends", "tpu", "x"], "unknown backend 'tpu'"),
    (["--batch", "1,a", "x"], "--batch takes comma-separated integers"),
])
def test_cli_bad_input_one_line_error(tmp_path, args, message):
    proc = run_cli("bench", *args, check=False, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgerl bench: error: ") and message in lines[0], proc.stderr


def test_bundle_bench_runs_without_torch(bundle, tmp_path):
    """A robot has the runtime, not torch: a bundle is benchmarked without importing it."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = ("import sys; sys.modules['torch'] = None\n"  # any 'import torch' now fails
            "from edgerl.cli import main\n"
            f"rc = main(['bench', {str(bundle)!r}, '--backends', 'torch,ort-cpu', '--quiet', '--json', "
            f"{str(tmp_path / 'r.json')!r}, *{FAST_CLI[:-2]!r}])\n"
            "sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert [r["backend"] for r in report["results"]] == ["ort-cpu"] and report["overhead"][0]["ratio"] > 0

"""``edgerl bench --precisions``: fp32/int8 variants of dense and compact policies timed in one run,
with the return column checked against the torch policy on the same seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgerl.bench.precision import (
    check_precisions,
    plot_return_vs_p99,
    precision_bench,
    precision_markdown,
)
from edgerl.checkpoint import load_checkpoint
from edgerl.commands.run import rollout
from edgerl.errors import ConfigError
from edgerl.export import policy_from_checkpoint

from .conftest import FAST, assert_percentiles_ordered


def test_precision_bench_dense_and_compact_with_returns(ckpt_pair, tmp_path):
    pruned, dense = ckpt_pair
    report = precision_bench([("dense", dense), ("compact", pruned)], ("fp32", "int8"), env="Hopper-v5",
                             episodes=1, seed=5, **FAST)
    rows = report["precision"]
    assert [(r["model"], r["precision"]) for r in rows] == [
        ("dense", "fp32"), ("dense", "int8"), ("compact", "fp32"), ("compact", "int8")]
    for r in rows:
        assert_percentiles_ordered(r)
        assert r["backend"] == "ort-cpu" and r["file_bytes"] > 0 and np.isfinite(r["return_mean"])
    int8 = [r for r in rows if r["precision"] == "int8"]
    assert all(0 < r["error"]["held_out"]["max"] <= 0.15 for r in int8)
    # The fp32 graph's return equals the torch policy's on the same seed (independent rollout).
    policy = policy_from_checkpoint(load_checkpoint(dense))
    with torch.no_grad():
        want = rollout(lambda o: policy(torch.as_tensor(o[None], dtype=torch.float32))[0].numpy(), "Hopper-v5", 1, 5,
                       None)
    assert rows[0]["returns"] == pytest.approx(want, rel=1e-3)
    table = precision_markdown(rows)
    assert table.count("\n") == 2 + len(rows) and "| compact | int8 | ort-cpu |" in table
    assert len({line.replace("\\|", "").count("|") for line in table.splitlines()}) == 1  # same columns
    plot_return_vs_p99(rows, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_precision_names_are_checked():
    assert check_precisions(["int8", "fp32"]) == ["int8", "fp32"]
    for bad in (["int4"], [], ["fp32", "fp32"]):
        with pytest.raises(ConfigError, match="--precisions"):
            check_precisions(bad)


def test_cli_bench_precisions_rejects_bad_names(ckpt_pair):
    from tests.conftest import run_cli

    proc = run_cli("bench", str(ckpt_pair[1]), "--precisions", "fp32,int4", check=False)
    assert proc.returncode == 2 and "--precisions takes distinct names from fp32,fp16,int8" in proc.stderr


def test_returns_of_an_image_policy_use_its_preprocessing(tmp_path):
    """``--return`` on an image checkpoint's own env rolls the frames it trained on (not raw 210x160x3)."""
    pytest.importorskip("ale_py", reason="the image agents need the Atari extra: pip install 'edgerl[atari]'")
    from edgerl.bench.precision import precision_bench
    from tests.export.test_image_agents import ENV, _image_ckpt

    path, _ = _image_ckpt(tmp_path / "ckpt.pt", "dqn")
    report = precision_bench([("dqn", path)], ["fp32", "fp16"], ["ort-cpu"], env=ENV, episodes=1, recorded_steps=16,
                             exporter="legacy", min_queries=20, min_seconds=0.0, rounds=2, warmup=2)
    rows = report["precision"]
    assert [r["precision"] for r in rows] == ["fp32", "fp16"] and all(len(r["returns"]) == 1 for r in rows)

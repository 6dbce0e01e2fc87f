"""edgerl.bench.train_speed (tools/bench_train.py): runners that do updates, interleaved rounds,
and the summary against the fp32 ceiling. Tiny budgets: structure only, never speed."""

from __future__ import annotations

import pytest

from edgerl.bench.train_speed import sac_updates, speed_summary, update_rates


def test_sac_updates_on_random_transitions_are_timed_in_rounds():
    run, flops = sac_updates("random", [8, 8], batch=4, fill=20, obs_dim=5, act_dim=2)
    assert flops > 0
    rates, gemm = update_rates({"edgerl": run}, rounds=2, updates=2)
    assert len(rates["edgerl"]) == len(gemm) == 2 and all(r > 0 for r in rates["edgerl"]) and min(gemm) > 0


def test_summary_takes_medians_and_ratios_against_edgerl():
    rates = {"edgerl": [100.0, 300.0, 200.0], "sb3": [50.0, 50.0, 100.0]}
    s = speed_summary(rates, [10.0, 30.0, 20.0], flops=10**8)
    assert s["updates_per_s"] == {"edgerl": 200.0, "sb3": 50.0} and s["rounds"] is rates
    assert s["gemm_gflops"] == 20.0 and s["fp32_ceiling"] == pytest.approx(200.0) and s["update_gflop"] == 0.1
    assert s["edgerl_vs_ceiling"] == pytest.approx(1.0) and s["ratio_edgerl_sb3"] == 4.0
    assert list(s)[-1] == "ratio_edgerl_sb3"

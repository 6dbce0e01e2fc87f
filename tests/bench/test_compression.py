"""The compression table's page: summaries over seeds, % of dense, and resumable results."""

from __future__ import annotations

import json
import time

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
    for v in vs.values():  # teachers are trained variants; size baselines are from-scratch variants
        assert v.teacher is None or (v.teacher in vs and vs[v.teacher].teacher is None and vs[v.teacher].args)
        assert v.size is None or (v.size.startswith("scratch-") and v.size in vs)
        if v.teacher is not None and v.size is not None:  # the baseline has the student's widths
            assert vs[v.size].args[-1] == ",".join(map(str, v.widths))


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


def test_goal_check_needs_the_bar_and_the_scratch_baseline_of_the_same_size():
    rows = [_row("dense", 1, [100.0], params=70_000), _row("scaled", 1, [120.0], params=270_000),
            _row("distill-32", 1, [118.0], params=1_600), _row("distill-gradual", 1, [119.0], params=13_000),
            _row("scratch-32", 1, [110.0], params=1_600), _row("gradual-actor", 1, [200.0], params=15_000)]
    (summaries,) = c.summarise(rows).values()
    verdict = c.goal_check(summaries)
    # bar = 0.97 * 120 (scaled is the best dense); 32x32 beats its scratch; 102x102 has no scratch run;
    # gradual-actor is not 5x smaller than dense.
    assert verdict.startswith("**met** by distill-32:") and "bar 116" in verdict
    assert "distill-gradual 119 (99% of scaled, scratch not run" in verdict and "gradual-actor" not in verdict
    rows[4] = _row("scratch-32", 1, [119.0], params=1_600)
    assert c.goal_check(c.summarise(rows)["Hopper-v5"]).startswith("**not met**: bar 116")
    rows[4] = _row("scratch-32", 1, [110.0], params=1_600)
    more = [*rows, _row("distill-32", 2, [118.0], params=1_600)]  # distill-32 on seeds 1,2; scratch on 1
    assert "pending: seeds differ" in c.goal_check(c.summarise(more)["Hopper-v5"])
    assert c.goal_check(c.summarise(more)["Hopper-v5"]).startswith("**not met**")
    nan = [_row("dense", 1, [float("nan")], params=70_000), *rows[1:]]
    assert c.goal_check(c.summarise(nan)["Hopper-v5"]) == "not judged: the dense return is not finite"
    nan = [rows[0], _row("scaled", 1, [float("nan")], params=270_000), *rows[2:]]
    assert "not judged: the scaled return is not finite" in c.goal_check(c.summarise(nan)["Hopper-v5"])
    negative = [_row("dense", 1, [-5.0], params=70_000), *rows[2:]]
    assert "is not positive" in c.goal_check(c.summarise(negative)["Hopper-v5"])
    page = c.render_markdown(rows, "cmd")
    assert "Goal (5x fewer deployed params than dense, >= 97% of the best dense, >= scratch of its size)" in page


def test_overview_shares_are_of_each_envs_best_dense_policy():
    rows = [_row("dense", 1, [100.0], params=70_000), _row("scaled", 1, [200.0], params=270_000),
            _row("distill-32", 1, [150.0], params=1_750), _row("distill-32", 2, [170.0], params=1_750)]
    cheetah = [dict(r, env="HalfCheetah-v5") for r in (_row("dense", 1, [50.0], params=70_000),
                                                        _row("distill-32", 1, [45.0], params=3_500))]
    page = c.render_markdown(rows + cheetah, "cmd")
    glance = page.split("## At a glance", 1)[1].split("## ", 1)[0]
    assert "| variant | HalfCheetah-v5 | Hopper-v5 | fewer params than dense (least over envs) |" in glance
    # Hopper: scaled (200) is the yardstick, the student's mean is over its two seeds; HalfCheetah: dense.
    assert "| distilled 32x32 from dense | 90% (1) | 80% (2) | 20.0x fewer |" in glance
    assert "| scaled 512x512 | - | 100% (1) | 3.9x more |" in glance and "| dense 256x256 (teacher) | 100% (1) | 50% (1) | 1x |" in glance
    assert "gradual 0.8 actor only" not in glance  # never run: no row
    nan = [_row("dense", 1, [float("nan")], params=70_000), _row("distill-32", 1, [45.0], params=3_500)]
    assert "distilled 32x32" not in c.render_markdown(nan, "cmd").split("## Hopper-v5", 1)[0]  # no yardstick


def test_claims_share_one_queue_between_workers(tmp_path):
    """A run another worker holds is passed over (and returned when not waiting); so is a student
    whose teacher is held; a claim ends with its holder, even a killed one."""
    import subprocess
    import sys

    runs, results = tmp_path / "runs", tmp_path / "results"
    teacher, student, done = (c.RunKey("Hopper-v5", "dense", 1), c.RunKey("Hopper-v5", "distill-32", 1),
                              c.RunKey("Hopper-v5", "scaled", 1))
    path = c.result_path(results, done)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_row("scaled", 1, [1.0])))
    with c.claimed(runs, teacher) as mine:
        assert mine
        with c.claimed(runs, teacher) as again:
            assert not again  # exclusive, even within one process
        # Nothing runs (it would fail: no env is trained here): the teacher and its student are held.
        left = c.run_queue([teacher, student, done], 100, results, runs, wait=False, log=lambda _: None)
        assert left == [teacher, student]
    with c.claimed(runs, student) as free:
        assert free  # released on exit
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]);"
                               "from pathlib import Path; from edgerl.bench import compression as c;"
                               "cm = c.claimed(Path(sys.argv[2]), c.RunKey('Hopper-v5', 'dense', 1));"
                               "assert cm.__enter__(); print('held', flush=True); time.sleep(60)",
                               str(c.Path(c.__file__).resolve().parents[2]), str(runs)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with c.claimed(runs, teacher) as mine:
            assert not mine
        holder.kill()
        holder.wait()
        with c.claimed(runs, teacher) as mine:
            assert mine  # the dead worker's claim is gone
    finally:
        holder.kill()
    # A worker killed while its trainer runs: the orphaned trainer keeps the claim until it ends.
    worker = subprocess.Popen([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]);"
                               "from pathlib import Path; from edgerl.bench import compression as c;"
                               "cm = c.claimed(Path(sys.argv[2]), c.RunKey('Hopper-v5', 'dense', 1));"
                               "assert cm.__enter__(); print('held', flush=True);"
                               "c.run_child([sys.executable, '-c', 'import time; print(1, flush=True); time.sleep(60)'])",
                               str(c.Path(c.__file__).resolve().parents[2]), str(runs)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert worker.stdout.readline().strip() == "held" and worker.stdout.readline().strip() == "1"
        worker.kill()
        worker.wait()
        with c.claimed(runs, teacher) as mine:
            assert not mine  # the trainer (the child) still holds it
    finally:
        subprocess.run(["pkill", "-f", "time.sleep\\(60\\)"], check=False)
    for _ in range(100):
        with c.claimed(runs, teacher) as mine:
            if mine:
                break
        time.sleep(0.05)
    assert mine  # free once the trainer is gone


def test_retime_latency_times_each_envs_graphs_together(tmp_path, ckpt_pair):
    """Rows whose graphs are in the runs folder get one interleaved measurement and keep their first
    figure; a row without a graph keeps its figure and is marked * on the page."""
    from edgerl.export import export_policy

    runs, results = tmp_path / "runs", tmp_path / "results"
    rows = [_row("dense", 1, [100.0], params=70_000), _row("distill-32", 1, [99.0], params=1_600),
            _row("scratch-32", 1, [98.0], params=1_600)]
    for row, ckpt in zip(rows[:2], reversed(ckpt_pair), strict=True):  # dense graph, then the small one
        run = runs / c.RunKey(row["env"], row["variant"], 1).slug
        export_policy(ckpt, run / "policy.onnx", recorded_steps=0, exporter="legacy")
        assert (run / "contract.json").is_file()
    for row in rows:
        path = c.result_path(results, c.RunKey(row["env"], row["variant"], 1))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(row))
    said: list[str] = []
    n = c.retime_latency(results, runs, log=said.append, min_queries=30, min_seconds=0.0, rounds=2, warmup=5)
    assert n == 2 and any("scratch-32-s1.json: no graph" in s for s in said)
    after = {r["variant"]: r for r in c.load_results(results)}
    for v in ("dense", "distill-32"):
        assert after[v]["ort_p50_us_at_run"] == 9.0 and after[v]["ort_p50_us"] != 9.0
        assert 0 < after[v]["ort_p50_us"] <= after[v]["ort_p99_us"] and "interleaved with 2" in after[v]["ort_timing"]
    assert after["scratch-32"]["ort_p50_us"] == 9.0 and "ort_timing" not in after["scratch-32"]
    page = c.render_markdown(list(after.values()), "cmd")
    assert "| 9.0* |" in page and page.count("* |") == 1


def test_queue_status_says_done_running_or_waiting(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    done, running, waiting = (c.RunKey("Hopper-v5", v, 1) for v in ("dense", "scaled", "scratch-32"))
    path = c.result_path(results, done)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_row("dense", 1, [12.0, 14.0])))
    (runs / running.slug).mkdir(parents=True)
    (runs / running.slug / "metrics.csv").write_text("step,wall_s\n10000,5.0\n20000,9.0\n")
    with c.claimed(runs, running) as held:
        assert held
        lines = c.queue_status([done, running, waiting], results, runs)
    assert lines == ["Hopper-v5/dense-s1: done, return 13.0", "Hopper-v5/scaled-s1: running, step 20,000 logged",
                     "Hopper-v5/scratch-32-s1: waiting"]


def test_students_of_a_finished_teacher_do_not_wait_for_its_claim(tmp_path, monkeypatch):
    runs, results = tmp_path / "runs", tmp_path / "results"
    teacher, student = c.RunKey("Hopper-v5", "dense", 1), c.RunKey("Hopper-v5", "distill-32", 1)
    ran: list[str] = []
    monkeypatch.setattr(c, "_run_one", lambda key, *a: ran.append(key.slug))
    with c.claimed(runs, teacher) as mine:  # a worker still holds the teacher (measuring it, say)
        assert mine
        assert c.run_queue([student], 100, results, runs, wait=False, log=lambda _: None) == [student]
        path = c.result_path(results, teacher)
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(_row("dense", 1, [1.0])))  # ... and now it is finished
        assert c.run_queue([student], 100, results, runs, wait=False, log=lambda _: None) == [] and ran == [
            "Hopper-v5/distill-32-s1"]


def test_a_failing_run_is_logged_and_the_queue_goes_on(tmp_path, monkeypatch):
    from edgerl.compact.api import CompactCheckError

    done: list[str] = []

    def run_one(key, *args):
        if key.variant == "gates":
            raise CompactCheckError("compacted policy differs from the original by 1.86e-05 (> 1e-05)")
        done.append(key.variant)

    monkeypatch.setattr(c, "_run_one", run_one)
    lines: list[str] = []
    queue = [c.RunKey("Hopper-v5", v, 1) for v in ("gates", "dense")]
    assert c.run_queue(queue, 100, tmp_path / "results", tmp_path / "runs", log=lines.append) == []
    assert done == ["dense"]  # the failure did not stop the run after it
    assert any(line.startswith("Hopper-v5/gates-s1: failed, left without a result") and "1.86e-05" in line
               for line in lines), lines

"""``edgerl sweep``: spec validation, the bootstrap interval, the results table, continuing a killed
sweep without duplicate runs, and the Ray executor on a local instance."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from edgerl.errors import ConfigError
from edgerl.sweep import load_spec, run_sweep
from edgerl.sweep.execute import SweepError, distill_command, run_plan, sweep_lock, train_command
from edgerl.sweep.results import bootstrap_ci, collect
from edgerl.sweep.spec import flag_args
from tests.conftest import REPO

TINY = """
name: tiny
envs: [Pendulum-v1]
seeds: [1, 2]
train: {algo: sac, total_steps: 240, hidden: [16, 16], batch_size: 16, learning_starts: 100,
        eval_every: 80, eval_episodes: 1, checkpoint_every: 80}
variants:
  dense: {}
  gradual: {prune: gradual, final_ratio: 0.5, prune_every: 20}
metric: {last: 2}
"""


def _spec(tmp_path: Path, text: str = TINY) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_spec_expands_to_one_folder_per_env_seed_variant(tmp_path):
    spec = load_spec(_spec(tmp_path), {"seeds": [3, 4, 5], "train": {"total-steps": "500"}})
    plans = spec.plans(tmp_path / "out")
    assert [p.key for p in plans] == [(v, "Pendulum-v1", s) for v in ("dense", "gradual") for s in (3, 4, 5)]
    assert len({p.folder for p in plans}) == 6
    assert plans[4].flags["prune"] == "gradual" and plans[4].flags["total_steps"] == "500"
    cmd = train_command(plans[4])
    assert cmd[cmd.index("--seed") + 1] == "4" and cmd[cmd.index("--hidden") + 1] == "16,16"
    assert cmd[cmd.index("--threads") + 1] == "1" and cmd[cmd.index("--total-steps") + 1] == "500"
    assert "--overwrite" in cmd and "--resume" not in cmd  # no checkpoint: what a killed run left goes
    plans[4].folder.mkdir(parents=True)
    (plans[4].folder / "ckpt.pt").write_bytes(b"")
    cmd = train_command(plans[4])  # a checkpoint is continued, never overwritten
    assert "--resume" in cmd and "--overwrite" not in cmd
    assert flag_args({"obs_norm": False, "final_ratio": 0.8}) == ["--obs-norm", "false", "--final-ratio", "0.8"]


@pytest.mark.parametrize("text, message", [
    ("envs: [Pendulum-v1]\nseeds: [1]\nvariants: {a: {hiden: 3}}", "unknown train flag 'hiden'"),
    ("envs: [Pendulum-v1]\nseeds: [1]\nvariants: {a: {seed: 3}}", "which the sweep sets per run"),
    ("envs: [Pendulum-v1]\nseeds: [1, 1]\nvariants: {a: {}}", "must not repeat"),
    ("envs: [Pendulum-v1]\nseeds: [x]\nvariants: {a: {}}", "'seeds' must be a non-empty list of integers"),
    ("envs: [Pendulum-v1]\nseeds: [1]\nvariants: {a: {scratch_of: b}}", "scratch_of must name an earlier"),
    ("envs: [Pendulum-v1]\nseeds: [1]\nvariants: {'a/b': {}}", "variant name 'a/b'"),
    ("envs: [Pendulum-v1]\nseed: [1]\nvariants: {a: {}}", "unknown keys ['seed']"),
    ("a: &a [1, 2]\nb: [*a, *a]\n: : :", "not valid YAML"),
    ("envs: [E]\nseeds: [1]\nvariants: {a: {}, s: {distill_of: b}}", "distill_of must name an earlier"),
    ("envs: [E]\nseeds: [1]\nvariants: {a: {}, s: {distill_of: a, distill: {widht: [8]}}}", "unknown distill flag 'widht'"),
    ("envs: [E]\nseeds: [1]\nvariants: {a: {}, s: {distill_of: a, distill: {seed: 3}}}", "which the sweep sets per run"),
    ("envs: [E]\nseeds: [1]\nvariants: {a: {}, s: {distill_of: a, distill: {init_from: z}}}", "init_from must name an earlier"),
    ("envs: [E]\nseeds: [1]\nvariants: {a: {}, s: {distill_of: a, hidden: [8]}}", "takes no train flags"),
    ("envs: [E]\nseeds: [1]\nvariants: {a: {}, s: {distill_of: a}, t: {scratch_of: s}}", "scratch_of must name an earlier"),
    ("envs: [E]\nseeds: [1]\nvariants: {a: {distill: {widths: [8]}}}", "unknown train flag 'distill'"),
    ("envs: [E]\nseeds: [1]\nvariants: {a: {}, s: {distill_of: [a]}}", "distill_of must name an earlier"),
    ("envs: [E]\nseeds: [1]\nvariants: {a: {}, s: {distill_of: a, distill: {init_from: [a]}}}", "init_from must name"),
    ("envs: [E]\nseeds: [1]\nvariants: {a: {}, s: {scratch_of: [a]}}", "scratch_of must name an earlier"),
    ("envs: [E]\nseeds: [1]\nvariants: {a: {}, s: {distill_of: a, distill: {rounds: -1}}}", "must not be negative"),
    ("envs: [E]\nseeds: [1]\nvariants: {a: {}, s: {distill_of: a, distill: {eval_episodes: 0}}}",
     "eval_episodes must be at least 1"),
    ("envs: [E]\nseeds: [1]\nvariants: {a: {}, s: {distill_of: a, distill: {widths: x}}}", "distill"),
])
def test_bad_specs_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(ConfigError) as e:
        load_spec(_spec(tmp_path, text))
    assert message in str(e.value) and "\n" not in str(e.value)


DISTILLED = TINY.replace("seeds: [1, 2]", "seeds: [1]").replace("metric:", """  student: {distill_of: dense, distill: {widths: [8, 8], rounds: 1, round_states: 300, steps_per_round: 60,
                                         eval_episodes: 2}}
  pruned-student: {distill_of: dense, distill: {init_from: gradual, rounds: 0, steps_per_round: 30,
                                                eval_episodes: 2}}
metric:""")


def test_a_distilled_variant_distils_its_teachers_run_of_the_same_env_and_seed(tmp_path):
    """prune -> distill as one step of a sweep: the student variants run ``edgerl distill`` on the
    dense run (one from --widths, one from the pruned run's networks), after the runs they need."""
    spec = load_spec(_spec(tmp_path, DISTILLED))
    out = (tmp_path / "out").resolve()
    plans = {p.variant: p for p in spec.plans(out)}
    assert plans["student"].flags == {} and plans["student"].distill_of == "dense"
    cmd = distill_command(plans["pruned-student"])
    assert cmd[cmd.index("distill") + 1] == str(out / "Pendulum-v1" / "dense" / "seed1" / "ckpt.pt")
    assert cmd[cmd.index("--init") + 1] == str(out / "Pendulum-v1" / "gradual" / "seed1" / "ckpt.pt")
    assert cmd[cmd.index("--seed") + 1] == "1" and cmd[cmd.index("--rounds") + 1] == "0"
    rows = {r["variant"]: r for r in run_sweep(spec, out, jobs=1, cwd=str(REPO))}
    assert set(rows) == {"dense", "gradual", "student", "pruned-student"}
    for name in ("student", "pruned-student"):
        report = json.loads((plans[name].folder / "distill.json").read_text())
        assert rows[name]["scores"] == [report["student_return"]["mean"]]
        assert np.isfinite(rows[name]["scores"]).all() and rows[name]["params"] == report["student_params"]
        assert report["teacher"].endswith(str(Path("dense", "seed1", "ckpt.pt")))
    assert rows["student"]["params"] < rows["dense"]["params"]
    student = torch.load(plans["pruned-student"].folder / "student.pt", weights_only=True)
    gradual = json.loads((plans["gradual"].folder / "done.json").read_text())
    assert gradual["steps"] == 240 and student["kind"] == "policy"
    assert "Distilled variants (student, pruned-student)" in (out / "results.md").read_text()
    assert run_sweep(spec, out, jobs=1, cwd=str(REPO)) == list(rows.values())  # finished: nothing reruns
    done = plans["student"].folder / "done.json"
    done.unlink()  # killed after the distillation wrote its report, before done.json
    log = (plans["student"].folder / "train.log").read_text()
    assert run_plan(plans["student"])["distill_of"] == "dense" and done.exists()
    assert (plans["student"].folder / "train.log").read_text() == log  # not distilled again


def test_oversized_spec_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="larger than 256 KiB"):
        load_spec(_spec(tmp_path, "name: x\n" + "#" * 300_000))


def test_bootstrap_interval_matches_the_normal_interval_for_many_seeds():
    x = np.random.default_rng(1).normal(10.0, 2.0, 400)
    lo, hi = bootstrap_ci(list(x))
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert abs(lo - (x.mean() - half)) < 0.03 and abs(hi - (x.mean() + half)) < 0.03
    assert all(math.isnan(v) for v in bootstrap_ci([1.0]))
    assert all(math.isnan(v) for v in bootstrap_ci([1.0, float("nan")]))


def test_results_average_the_last_evaluations_per_seed(tmp_path):
    spec = load_spec(_spec(tmp_path))
    plans = spec.plans(tmp_path / "out")
    for i, p in enumerate(plans):
        p.folder.mkdir(parents=True)
        rows = ["step,wall_s,eval_return,params", f"80,6,{i},100", f"160,12,{10 * i},100", f"240,18,{10 * i + 2},{90 + i}"]
        (p.folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    rows = collect(spec, plans)
    assert [(r["variant"], r["seeds"]) for r in rows] == [("dense", [1, 2]), ("gradual", [1, 2])]
    assert rows[1]["scores"] == [21.0, 31.0]  # runs 2 and 3: mean of the last two evaluations
    assert rows[1]["mean"] == 26.0 and rows[1]["ci95"][0] >= 21.0 and rows[1]["ci95"][1] <= 31.0
    assert rows[0]["params"] == 90 and rows[0]["wall_min"] == pytest.approx(0.3)


def test_a_finished_run_is_kept_and_a_locked_folder_refused(tmp_path):
    plan = load_spec(_spec(tmp_path)).plans(tmp_path / "out")[0]
    plan.folder.mkdir(parents=True)
    record = {"variant": "dense", "env": "Pendulum-v1", "seed": 1, "steps": 240}
    (plan.folder / "done.json").write_text(json.dumps(record))
    assert run_plan(plan) == record  # no training: the folder holds no checkpoint at all
    with sweep_lock(tmp_path / "out"):
        child = subprocess.run([sys.executable, "-c", "from pathlib import Path; from edgerl.sweep.execute import "
                                f"sweep_lock\nwith sweep_lock(Path({str(tmp_path / 'out')!r})): pass"],
                               capture_output=True, text=True, cwd=REPO)
    assert "another edgerl sweep is running" in child.stderr
    with pytest.raises(SweepError, match="choose local or ray"):
        run_sweep(load_spec(_spec(tmp_path)), tmp_path / "out", executor="slurm")


def test_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path):
    """A run folder with metrics and a replay file but no checkpoint (killed between the two
    writes) has nothing to continue: the sweep trains it afresh instead of stopping on it."""
    plan = load_spec(_spec(tmp_path)).plans(tmp_path / "out")[0]
    plan.folder.mkdir(parents=True)
    (plan.folder / "metrics.csv").write_text("step,eval_return\n80,-1.0\n")
    (plan.folder / "replay-80.npz").write_bytes(b"left by a killed run")
    record = run_plan(plan)
    assert record["steps"] == 240 and (plan.folder / "ckpt.pt").is_file()
    assert not (plan.folder / "replay-80.npz").exists()
    assert "-1.0" not in (plan.folder / "metrics.csv").read_text()


def _sweep(spec: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "edgerl.cli", "sweep", str(spec), "--out", str(out), *extra],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_killed_sweep_continues_without_duplicate_runs(tmp_path):
    """A tiny sweep (2 seeds x 2 variants) is SIGKILLed once some run has checkpointed; the
    re-run keeps finished runs, resumes the others and writes a table with one row per variant."""
    spec, out = _spec(tmp_path), tmp_path / "sweep"
    proc = _sweep(spec, out, "--jobs", "2")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(out.glob("*/*/seed*/ckpt.pt")) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)  # the training children die with the sweep (PR_SET_PDEATHSIG)
    before = {p.parent: p.stat().st_mtime_ns for p in out.glob("*/*/seed*/done.json")}
    assert len(before) < 4, "the sweep finished before it was killed; nothing was resumed"
    assert list(out.glob("*/*/seed*/ckpt.pt")), "no run had a checkpoint when the sweep was killed"
    proc = _sweep(spec, out, "--jobs", "2")
    text, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, text
    folders = sorted(p.parent for p in out.glob("*/*/seed*/done.json"))
    assert [f.relative_to(out).as_posix() for f in folders] == [
        f"Pendulum-v1/{v}/seed{s}" for v in ("dense", "gradual") for s in (1, 2)]
    for folder, mtime in before.items():
        assert (folder / "done.json").stat().st_mtime_ns == mtime  # finished runs were not redone
    for folder in folders:
        steps = [int(line.split(",")[0]) for line in (folder / "metrics.csv").read_text().splitlines()[1:]]
        assert steps == [80, 160, 240], (folder, steps)  # resumed runs have no duplicate rows
    resumed = [f for f in folders if "--resume" in (f / "train.log").read_text()]
    assert resumed, "no run was resumed from its checkpoint"
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["variant"], r["seeds"]) for r in rows] == [("dense", [1, 2]), ("gradual", [1, 2])]
    assert all(np.isfinite(r["scores"]).all() for r in rows)
    gradual, dense = rows[1]["params"], rows[0]["params"]
    assert gradual < dense  # the gradual variant's deployed actor is smaller
    assert (out / "results.md").read_text().count("| Pendulum-v1 |") == 2


@pytest.mark.slow
def test_ray_executor_runs_a_sweep_on_a_local_instance(tmp_path):
    """Ray's local start takes ~10 s here and a run ~10 s more: slow by the suite's budget."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'edgerl[ray]')")
    text = TINY.replace("seeds: [1, 2]", "seeds: [1]").replace("total_steps: 240", "total_steps: 160")
    spec = load_spec(_spec(tmp_path, text))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows = run_sweep(spec, tmp_path / "ray", executor="ray")
    finally:
        ray.shutdown()
    assert [(r["variant"], r["seeds"]) for r in rows] == [("dense", [1]), ("gradual", [1])]
    assert all(np.isfinite(r["scores"]).all() for r in rows)
    assert all((p.folder / "done.json").exists() for p in spec.plans(tmp_path / "ray"))


@pytest.mark.parametrize("path", sorted((REPO / "profiles" / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_sweep_specs_are_valid(path, tmp_path):
    spec = load_spec(path)
    plans = spec.plans(tmp_path)
    assert len(plans) == len(spec.envs) * len(spec.seeds) * len(spec.variants)
    for plan in plans:
        if plan.distill_of is not None:
            assert distill_command(plan)[3] == "distill"
        else:
            assert train_command(plan)[3] == "train"


def test_a_subset_of_variants_keeps_the_runs_derived_ones_start_from(tmp_path):
    text = TINY.replace("metric:", "  scratch: {scratch_of: gradual}\n  student: {distill_of: dense}\nmetric:")
    spec = load_spec(_spec(tmp_path, text))
    spec.select({"scratch", "nonexistent"})
    assert list(spec.variants) == ["gradual", "scratch"]
    spec = load_spec(_spec(tmp_path, text))
    spec.select({"student"})
    assert list(spec.variants) == ["dense", "student"]


def test_per_run_summaries_are_added_to_the_sweep_results(tmp_path):
    from edgerl.sweep.results import add_run_summaries, run_summaries

    spec = load_spec(_spec(tmp_path))
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"name": "tiny", "rows": []}))
    (out / "results.md").write_text("# tiny\n")
    results = run_summaries(spec, out, lambda folder: {"run": folder.parent.name})
    assert results == {"Pendulum-v1": {v: [{"seed": s, "run": v} for s in (1, 2)] for v in ("dense", "gradual")}}
    add_run_summaries(out, spec, "spec.yaml", results, "| table |", plots=[str(out / "widths-a.png")])
    record = json.loads((out / "results.json").read_text())
    assert list(record) == ["name", "rows", "args", "results", "plots"] and record["results"] == results
    assert record["args"] == {"envs": "Pendulum-v1", "seeds": "1,2", "steps": 240, "spec": "spec.yaml"}
    assert (out / "results.md").read_text() == ("# tiny\n\nPer run (for tools/make_reports.py), mean ± std over seeds:"
                                                "\n\n| table |\n\n![widths](widths-a.png)\n")
    add_run_summaries(out, spec, "spec.yaml", results, "| again |")
    assert "plots" in json.loads((out / "results.json").read_text())  # kept from before; none given this time

"""A short PPO learning run on an ALE game, and its learning curve from ``metrics.csv``.

Runs ``edgerl train --algo ppo`` (as a user would, in a subprocess) with a CPU-sized budget, then
prints and writes the curve: environment steps vs the last training episode's game score and the
greedy policy's evaluation score. The paper-scale command (Impala tau = 3, 25 M steps, gradual
group pruning to 0.8) is printed beside it; it needs days of CPU, so it is not run here.

Usage::

    python tools/learn_ppo.py                         # Breakout, 300k steps, Nature CNN at 64x64
    python tools/learn_ppo.py --net impala --width 1  # the Impala-CNN (about 4x slower on CPU)
    python tools/learn_ppo.py --report-only           # curve of a run in progress (or finished)
    python tools/learn_ppo.py --resume --total-steps 600000   # extend a finished run
    python tools/learn_ppo.py -- --prune gradual      # flags after -- go to edgerl train

Defaults are chosen for rising returns within about 40 minutes on one (shared) CPU thread; Pong
needs millions of steps to move, Breakout a few hundred thousand. The Nature CNN at 64x64 runs
about 4x more samples/s than Impala tau = 1 here. Measured on the development machine: 300k steps
in 32 min; over 10 games on the same seeds the policy (actions sampled, as trained) scored 4.8 at
300k steps and 10.3 at 600k, a uniformly random one 2.2. The curve's greedy evaluation lags
behind: an argmax Breakout policy often never presses FIRE after a lost life and idles until the
episode cap.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """Own flags, and the flags after ``--`` passed through to ``edgerl train``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="ALE/Breakout-v5", help="ALE game (default: %(default)s)")
    p.add_argument("--total-steps", type=int, default=300_000, help="env steps (default: %(default)s)")
    p.add_argument("--net", default="nature", choices=("nature", "impala"), help="encoder (default: %(default)s)")
    p.add_argument("--width", type=float, default=1.0, help="width factor tau (default: %(default)s)")
    p.add_argument("--frame-size", type=int, default=64, help="frame height/width (default: %(default)s)")
    p.add_argument("--eval-every", type=int, default=25_000, help="env steps between evaluations")
    p.add_argument("--eval-episodes", type=int, default=2, help="greedy games per evaluation")
    p.add_argument("--max-episode-steps", type=int, default=3_000,
                   help="cap on agent steps per game (a greedy Breakout policy that never presses FIRE "
                        "would otherwise play 27k steps)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=None, help="run folder (default: runs/learn_ppo_<game>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its ckpt.pt")
    p.add_argument("--report-only", action="store_true", help="only print/write the curve of --out")
    p.add_argument("--final-eval", type=int, default=10, metavar="N",
                   help="after training, play N games with the latest policy (sampled) and N with a uniformly "
                        "random one, a steadier comparison than the curve's 2-game points (0: skip)")
    args = p.parse_args(argv)
    if args.out is None:
        game = args.env.split("/")[-1].split("-")[0].lower()
        args.out = str(REPO / "runs" / f"learn_ppo_{game}")
    return args, extra


def train_command(args: argparse.Namespace, extra: list[str]) -> list[str]:
    """The ``edgerl train`` command line of this run."""
    if args.resume:
        return ["edgerl", "train", "--resume", args.out, "--total-steps", str(args.total_steps)]
    return ["edgerl", "train", "--algo", "ppo", "--env", args.env, "--net", args.net, "--width", str(args.width),
            "--frame-size", str(args.frame_size), "--total-steps", str(args.total_steps),
            "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
            "--checkpoint-every", str(args.eval_every * 2), "--max-episode-steps", str(args.max_episode_steps),
            "--threads", str(args.threads), "--seed", str(args.seed), "--out", args.out, *extra]


def paper_command(env: str) -> str:
    """The paper-scale run (REFERENCE.md section 1) on the same game."""
    game = env.split("/")[-1].split("-")[0].lower()
    return (f"edgerl train --algo ppo --env {env} --recipe profiles/recipes/ppo_paper.yaml "
            f"--prune gradual --out runs/ppo_paper_{game}_tau3_g08")


def report(args: argparse.Namespace, extra: list[str], finished: bool) -> dict[str, Any]:
    """Print and write (``curve.json``, ``curve.md`` in the run folder) the curve so far."""
    from edgerl.bench.learning_curve import curve_markdown, final_eval, read_curve
    from edgerl.runtime.fileio import atomic_write_text

    out = Path(args.out)
    rows = read_curve(out / "metrics.csv")
    cmd = " ".join(train_command(args, extra))
    finals = final_eval(out / "ckpt.pt", args.final_eval) if args.final_eval > 0 and (out / "ckpt.pt").exists() \
        else {}
    paper = paper_command(args.env)
    text = curve_markdown(args.env, finished, cmd, rows, finals, args.final_eval, paper)
    print(text)
    payload = {"env": args.env, "finished": finished, "command": cmd, "paper_command": paper,
               "curve": rows, "final_eval": finals}
    atomic_write_text(out / "curve.json", json.dumps(payload, indent=2, default=float) + "\n")
    atomic_write_text(out / "curve.md", text + "\n")
    return payload


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    if args.report_only:
        report(args, extra, finished=(Path(args.out) / "ckpt.pt").exists())
        return 0
    out = Path(args.out)
    if (out / "ckpt.pt").exists() and not args.resume:
        print(f"{out} already holds a run: pass --resume to continue it, --report-only to see its curve, "
              "or --out to start another", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    cmd = train_command(args, extra)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    print("running: " + " ".join(cmd), flush=True)
    start = time.monotonic()
    with open(out / "train.log", "a") as log:
        proc = subprocess.run([sys.executable, "-m", "edgerl.cli", *cmd[1:]], cwd=REPO, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    print(f"edgerl train exited with {proc.returncode} after {(time.monotonic() - start) / 60:.1f} min "
          f"(log: {out / 'train.log'})")
    report(args, extra, finished=proc.returncode == 0)
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())

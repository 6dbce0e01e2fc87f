"""``distill``: fit a small student policy to a teacher's deployed function, then compare them.

Round 0 fits the student to the teacher's replay states (or logged observations, or states the
teacher visits); each DAgger round (Ross et al. 2011) then adds states the *student* visits,
labelled by the teacher, so the student learns to recover from its own mistakes. The loss is the
MSE of the squashed actions (or pre-tanh means) for continuous policies and the temperature
softened KL of policy distillation (Rusu et al. 2016) for discrete ones.

Restartable: the state (student, optimizer, RNGs, progress) is saved beside the output as
``<out>.distill-state.pt`` with the labelled states in ``<out>.distill-data.npz``; a rerun with the
same inputs and settings continues from it, and both are deleted once the student is written.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from edgerl.bench.macs import count_macs, count_params
from edgerl.bench.returns import episode_returns, mean_ci95
from edgerl.checkpoint import checkpoint_file, load_checkpoint, save_checkpoint
from edgerl.config import to_dict
from edgerl.distill.config import DistillConfig
from edgerl.distill.data import (
    label,
    load_observations,
    logged_starts,
    replay_states,
    rollout_states,
)
from edgerl.distill.student import (
    build_student,
    check_supported,
    fitted_normalizer,
    init_nets,
    raw_outputs,
    raw_sequence,
    raw_stream,
    squashed,
    student_nets,
)
from edgerl.errors import CheckpointError, ConfigError
from edgerl.export.observations import input_dtype, obs_space, one_episode
from edgerl.export.policy import policy_checkpoint_payload, policy_from_checkpoint
from edgerl.export.wrappers import DeployedPolicy
from edgerl.runtime.fileio import atomic_write, sha256_file

STATE_VERSION = 2


@dataclass
class DistillReport:
    """Teacher next to student: size, cost, fit and return on the same env seeds."""

    teacher: str
    output: str
    algo: str
    env: str | None
    teacher_params: int
    teacher_macs: int
    student_params: int
    student_macs: int
    student_widths: dict[str, dict[str, int]]
    states: int
    """Labelled states trained on (all rounds)."""
    rounds: int
    steps: int
    heldout: dict[str, float]
    """Fit on held-out states: ``action_mae`` (continuous, in [-1, 1] units) or ``agreement`` (discrete)."""
    teacher_return: dict[str, Any] | None = None
    student_return: dict[str, Any] | None = None
    return_ratio: float | None = None
    eval_seeds: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    """Per round: states, the loss of its first and last step (first: NaN for a resumed round)."""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def temperature(cfg: DistillConfig, algo: str) -> float:
    """The teacher softmax temperature (0 in the config: 0.01 for Q-values, 1 for logits)."""
    if cfg.temperature > 0:
        return cfg.temperature
    return 0.01 if algo == "dqn" else 1.0


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, discrete: bool, loss: str, tau: float) -> torch.Tensor:
    """Continuous: MSE of tanh-squashed actions (``action``) or of pre-tanh means (``mean``).
    Discrete: KL(softmax(teacher / tau) || softmax(student)), Rusu et al. 2016."""
    if discrete:
        log_p = F.log_softmax(teacher / tau, dim=-1)
        return (log_p.exp() * (log_p - F.log_softmax(student, dim=-1))).sum(-1).mean()
    if loss == "action":
        return (torch.tanh(student) - torch.tanh(teacher)).pow(2).mean()
    return (student - teacher).pow(2).mean()


def check_config(cfg: DistillConfig) -> None:
    if cfg.loss not in ("action", "mean"):
        raise ConfigError(f"--loss {cfg.loss!r}: choose action or mean")
    for name in ("steps_per_round", "batch_size", "round_states"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    if cfg.rounds < 0 or cfg.replay_states < 0 or cfg.eval_episodes < 0 or cfg.checkpoint_every < 0:
        raise ConfigError("--rounds, --replay-states, --eval-episodes and --checkpoint-every must not be negative")
    if not (0.0 <= cfg.holdout < 0.5):
        raise ConfigError(f"--holdout must be in [0, 0.5), got {cfg.holdout}")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise ConfigError(f"--lr must be positive, got {cfg.lr}")
    for name, least in (("sequence_length", 1), ("burn_in", 0), ("rnn_hidden", 0)):
        if getattr(cfg, name) < least:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least {least}, got {getattr(cfg, name)}")


def state_paths(out: Path) -> tuple[Path, Path]:
    """Where the restartable state of a distillation into ``out`` lives."""
    return out.with_name(out.stem + ".distill-state.pt"), out.with_name(out.stem + ".distill-data.npz")


@torch.no_grad()
def _heldout(student: DeployedPolicy, obs: np.ndarray, targets: np.ndarray, starts: np.ndarray,
             dtype: np.dtype) -> dict[str, float]:
    if len(obs) == 0:
        return {}
    # a recurrent student runs the held-out stream in order, from its first step's zero memory
    s = raw_stream(student, torch.as_tensor(np.ascontiguousarray(obs, dtype=dtype)), starts).numpy()
    if student.discrete:
        return {"agreement": float((s.argmax(-1) == targets.argmax(-1)).mean()), "states": len(obs)}
    if squashed(student):
        s, targets = np.tanh(s), np.tanh(targets)
    return {"action_mae": float(np.abs(s - targets).mean()), "states": len(obs)}


def _example(ckpt: dict[str, Any]) -> torch.Tensor:
    space = obs_space(ckpt)
    return torch.zeros(1, *space["shape"], dtype=torch.uint8 if input_dtype(space) == np.uint8 else torch.float32)


def _size(policy: DeployedPolicy, ckpt: dict[str, Any]) -> tuple[int, int]:
    return count_params(policy), count_macs(policy, _example(ckpt))


class _Data:
    """Labelled states: ``obs``, teacher ``targets``, the ``round`` each came in, ``holdout`` rows,
    and episode ``starts``: the rows are streams in time order (what a recurrent student trains on)."""

    def __init__(self, obs: np.ndarray, targets: np.ndarray, rounds: np.ndarray, holdout: np.ndarray,
                 starts: np.ndarray):
        self.obs, self.targets, self.rounds, self.holdout, self.starts = obs, targets, rounds, holdout, starts
        self.train_idx = np.flatnonzero(~holdout)

    def add(self, obs: np.ndarray, targets: np.ndarray, rnd: int, starts: np.ndarray) -> None:
        self.obs = np.concatenate([self.obs, obs.astype(self.obs.dtype)])
        self.targets = np.concatenate([self.targets, targets])
        self.rounds = np.concatenate([self.rounds, np.full(len(obs), rnd, dtype=np.int64)])
        self.holdout = np.concatenate([self.holdout, np.zeros(len(obs), dtype=bool)])
        self.starts = np.concatenate([self.starts, np.asarray(starts, dtype=bool)])
        self.train_idx = np.flatnonzero(~self.holdout)

    def windows(self, length: int) -> np.ndarray:
        """First rows of every ``length``-row window of training rows (none held out).

        Raises:
            ConfigError: Fewer training rows in a row than one window.
        """
        held = np.concatenate([[0], np.cumsum(self.holdout)])
        first = np.flatnonzero(held[length:] - held[:-length] == 0) if len(self.obs) >= length else np.empty(0, int)
        if len(first) == 0:
            raise ConfigError(f"{len(self.train_idx)} training states hold no sequence of {length} steps "
                              "(--burn-in + --sequence-length): lower those or collect more states")
        return first

    def save(self, path: Path) -> None:
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, obs=self.obs, targets=self.targets, rounds=self.rounds, holdout=self.holdout,
                         starts=self.starts)

        atomic_write(path, write)

    @classmethod
    def load(cls, path: Path) -> _Data:
        try:
            with np.load(path, allow_pickle=False) as d:
                return cls(d["obs"], d["targets"], d["rounds"], d["holdout"].astype(bool), d["starts"].astype(bool))
        except Exception as e:
            raise CheckpointError(f"{path}: distillation data is unreadable ({type(e).__name__}); delete it and "
                                  f"{path.with_name(path.name.replace('-data.npz', '-state.pt'))} to start over") from None


def distill(teacher_path: str | Path, out: str | Path, cfg: DistillConfig, *, env_id: str | None = None,
            use_env: bool = True, observations: str | Path | None = None, init: str | Path | None = None,
            log: Any = print) -> DistillReport:
    """Distil the teacher checkpoint into a student written to ``out`` (a ``kind: "policy"`` checkpoint).

    Args:
        teacher_path: A train or policy checkpoint (or its run folder).
        out: The student checkpoint to write.
        cfg: Settings.
        env_id: Env to roll (DAgger, evaluation) instead of the teacher's own (same spaces).
        use_env: Whether an env may be rolled at all (False with logged observations only).
        observations: An ``.npz`` with logged observations (``obs``) to train on.
        init: A (pruned/compacted) checkpoint whose deployed networks start the student.
        log: Where progress lines go.

    Raises:
        ConfigError, CheckpointError: Bad settings or inputs (one line each).
    """
    t0 = time.monotonic()
    check_config(cfg)
    teacher_path, out = checkpoint_file(teacher_path), Path(out)
    ckpt = load_checkpoint(teacher_path)
    teacher = policy_from_checkpoint(ckpt)
    check_supported(teacher)
    env_ckpt = {**ckpt, "env": {**ckpt["env"], "id": env_id}} if env_id else ckpt
    dtype = input_dtype(obs_space(ckpt))
    tau = temperature(cfg, ckpt["algo"])
    fingerprint = {"teacher": sha256_file(teacher_path), "config": to_dict(cfg), "env": env_id if use_env else None,
                   "observations": sha256_file(observations) if observations and Path(observations).is_file() else None,
                   "init": sha256_file(checkpoint_file(init)) if init else None, "version": STATE_VERSION}
    state_path, data_path = state_paths(out)
    rounds = cfg.rounds if use_env else 0
    rng = np.random.default_rng(cfg.seed)

    state = _load_state(state_path, data_path, fingerprint)
    if state is not None:
        st, data = state
        student = policy_from_checkpoint(st)
        for net in student.nets().values():
            net.requires_grad_(True)
        done_round, done_step, history = st["distill_state"]["round"], st["distill_state"]["step"], st["distill_state"]["history"]
        earlier_s = float(st["distill_state"].get("wall_s", 0.0))  # the killed attempts' time (0: older state)
        log(f"continuing the distillation in {state_path}: round {done_round}, step {done_step}/{cfg.steps_per_round}")
    else:
        data = _first_round(teacher, ckpt, env_ckpt, teacher_path, cfg, use_env, observations, rng, log)
        torch.manual_seed(cfg.seed)
        if init:
            init_ckpt = load_checkpoint(checkpoint_file(init))
            init_policy = policy_from_checkpoint(init_ckpt)
            nets, norm = init_nets(init_policy, teacher), copy.deepcopy(init_policy.normalizer)
        else:
            nets = student_nets(teacher, ckpt["env"], cfg.widths, cfg.channel_scale, cfg.rnn_hidden)
            norm = copy.deepcopy(teacher.normalizer)
            if norm is None and not teacher.discrete and dtype != np.uint8:
                norm = fitted_normalizer(data.obs[data.train_idx])
        student = build_student(teacher, ckpt, nets, norm)
        done_round, done_step, history = 0, 0, []
        earlier_s = 0.0
        st = None
    params = [p for net in student.nets().values() for p in net.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr, foreach=True)
    if st is not None:
        opt.load_state_dict(st["distill_state"]["optim"])
        rng.bit_generator.state = st["distill_state"]["numpy_rng"]
        torch.set_rng_state(st["distill_state"]["torch_rng"])

    def save_state(rnd: int, step: int) -> None:
        payload = _payload(student, ckpt, teacher_path, {})
        payload["distill_state"] = {"fingerprint": fingerprint, "round": rnd, "step": step, "optim": opt.state_dict(),
                                    "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                                    "history": history, "wall_s": earlier_s + time.monotonic() - t0}
        save_checkpoint(state_path, payload)

    from edgerl.algos.run import Progress

    if st is None:
        data.save(data_path)
        save_state(0, 0)
    total = (rounds + 1) * cfg.steps_per_round
    bar = Progress(total, done_round * cfg.steps_per_round + done_step, cfg.progress, "distill")
    try:
        for rnd in range(done_round, rounds + 1):
            if rnd > 0 and not (data.rounds == rnd).any():
                new, new_starts = rollout_states(student, env_ckpt, cfg.round_states, seed=cfg.seed + 1000 * rnd)
                data.add(new, label(teacher, new, ckpt, new_starts), rnd, new_starts)
                data.save(data_path)
                save_state(rnd, 0)
            windows = data.windows(cfg.burn_in + cfg.sequence_length) if teacher.recurrent is not None else None
            loss_val, first_loss = math.nan, math.nan
            for step in range(done_step if rnd == done_round else 0, cfg.steps_per_round):
                if windows is None:
                    idx = data.train_idx[rng.integers(0, len(data.train_idx), size=cfg.batch_size)]
                    obs = torch.as_tensor(np.ascontiguousarray(data.obs[idx], dtype=dtype))
                    pred, target = raw_outputs(student, obs), torch.as_tensor(data.targets[idx])
                else:
                    pred, target = _sequence_batch(student, data, windows, rng, cfg, dtype)
                loss = distill_loss(pred, target, teacher.discrete, cfg.loss if squashed(teacher) else "mean", tau)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_val = float(loss.detach())
                if step == 0:
                    first_loss = loss_val
                if not math.isfinite(loss_val):
                    raise ConfigError(f"the distillation loss became {loss_val} at round {rnd}, step {step}; "
                                      "lower --lr")
                if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps_per_round:
                    save_state(rnd, step + 1)
                bar.update(rnd * cfg.steps_per_round + step + 1, {"round": rnd, "loss": f"{loss_val:.3g}"})
            history.append({"round": rnd, "states": int((data.rounds <= rnd).sum()), "first_loss": first_loss,
                            "loss": loss_val})
            log(f"round {rnd}: {int((data.rounds <= rnd).sum())} states, loss {loss_val:.4g}")
            save_state(rnd + 1, 0)
    finally:
        bar.close()

    student.eval().requires_grad_(False)
    report = _report(teacher, student, ckpt, env_ckpt, teacher_path, out, cfg, data, dtype, rounds, history,
                     use_env, log)
    report.wall_s = earlier_s + time.monotonic() - t0  # every attempt's time, not only the last one
    save_checkpoint(out, _payload(student, ckpt, teacher_path, {"distill": report.to_dict()}))
    state_path.unlink(missing_ok=True)
    data_path.unlink(missing_ok=True)
    return report


def _sequence_batch(student: DeployedPolicy, data: _Data, windows: np.ndarray, rng: np.random.Generator,
                    cfg: DistillConfig, dtype: np.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A recurrent student's outputs and the teacher's labels over ``batch_size / sequence_length``
    random windows: ``burn_in`` steps from the zero memory without gradient, then
    ``sequence_length`` steps backpropagated through time; the memory is zeroed at episode starts
    inside a window as it is when acting. Returns ``[sequence_length * B, out]`` twice."""
    b = max(1, cfg.batch_size // cfg.sequence_length)
    rows = (windows[rng.integers(0, len(windows), size=b)][:, None] + np.arange(cfg.burn_in + cfg.sequence_length)).T
    obs = torch.as_tensor(np.ascontiguousarray(data.obs[rows], dtype=dtype))  # [T, B, ...]
    starts = torch.as_tensor(data.starts[rows])
    state = None
    if cfg.burn_in:
        with torch.no_grad():
            _, state = raw_sequence(student, obs[:cfg.burn_in], starts[:cfg.burn_in])
    pred, _ = raw_sequence(student, obs[cfg.burn_in:], starts[cfg.burn_in:], state)
    target = torch.as_tensor(data.targets[rows[cfg.burn_in:]])
    return pred.flatten(0, 1), target.flatten(0, 1)


def _payload(student: DeployedPolicy, ckpt: dict[str, Any], teacher_path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    deployed = {**student.nets(), **({"normalizer": student.normalizer} if student.normalizer is not None else {})}
    return policy_checkpoint_payload(
        ckpt["algo"], ckpt["env"], ckpt["config"], deployed, counters=ckpt.get("counters"),
        source={"checkpoint": str(teacher_path), "sha256": sha256_file(teacher_path), "kind": ckpt["kind"],
                "distilled": True}, extra=extra)


def _load_state(state_path: Path, data_path: Path, fingerprint: dict[str, Any]) -> tuple[dict[str, Any], _Data] | None:
    if not state_path.exists():
        return None
    st = load_checkpoint(state_path)
    ds = st.get("distill_state") or {}
    version = (ds.get("fingerprint") or {}).get("version")
    if version != STATE_VERSION:
        raise ConfigError(f"{state_path} holds a distillation state of version {version}, this edgerl reads "
                          f"{STATE_VERSION}; delete it (and its -data.npz) to start over")
    if ds.get("fingerprint") != fingerprint:
        raise ConfigError(f"{state_path} holds a distillation with another teacher, inputs or settings; rerun "
                          "with those, or delete it (and its -data.npz) to start over")
    if not data_path.exists():
        raise CheckpointError(f"{data_path}: the distillation state's data is missing; delete {state_path} to start over")
    return st, _Data.load(data_path)


def _first_round(teacher: DeployedPolicy, ckpt: dict[str, Any], env_ckpt: dict[str, Any], teacher_path: Path,
                 cfg: DistillConfig, use_env: bool, observations: str | Path | None, rng: np.random.Generator,
                 log: Any) -> _Data:
    """Round 0's labelled states: logged observations, else the replay buffer, else teacher rollouts.
    A recurrent teacher's held-out states are the stream's last ones (an episode of their own)."""
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    sources = []
    if observations:
        logged = load_observations(observations, ckpt)  # a feed-forward teacher ignores any 'start' flags
        recurrent = teacher.recurrent is not None
        parts.append((logged, logged_starts(observations, len(logged)) if recurrent else one_episode(len(logged))))
        sources.append(f"{len(logged)} logged observations")
    replay = replay_states(teacher_path, ckpt, cfg.replay_states) if ckpt["kind"] == "train" else None
    if replay is not None:  # a train checkpoint: a feed-forward teacher, to which starts mean nothing
        parts.append((replay, one_episode(len(replay))))
        sources.append(f"{len(replay)} replay states")
    if not parts:
        if not use_env:
            raise ConfigError("no states to distil on: the teacher has no replay buffer; pass --observations or an env")
        parts.append(rollout_states(teacher, env_ckpt, cfg.round_states, seed=cfg.seed))
        sources.append(f"{len(parts[-1][0])} states visited by the teacher")
    obs, starts = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    log("round 0 trains on " + " + ".join(sources))
    holdout = np.zeros(len(obs), dtype=bool)
    n_hold = int(len(obs) * cfg.holdout)
    if n_hold and len(obs) - n_hold >= 1:
        if teacher.recurrent is not None:
            holdout[-n_hold:] = True
            starts[-n_hold] = True
        else:
            holdout[rng.choice(len(obs), size=n_hold, replace=False)] = True
    return _Data(obs, label(teacher, obs, ckpt, starts), np.zeros(len(obs), dtype=np.int64), holdout, starts)


def _report(teacher: DeployedPolicy, student: DeployedPolicy, ckpt: dict[str, Any], env_ckpt: dict[str, Any],
            teacher_path: Path, out: Path, cfg: DistillConfig, data: _Data, dtype: np.dtype, rounds: int,
            history: list[dict[str, float]], use_env: bool, log: Any) -> DistillReport:
    from edgerl.prune import layer_widths

    tp, tm = _size(teacher, ckpt)
    sp, sm = _size(student, ckpt)
    report = DistillReport(
        teacher=str(teacher_path), output=str(out), algo=ckpt["algo"], env=env_ckpt["env"]["id"] if use_env else None,
        teacher_params=tp, teacher_macs=tm, student_params=sp, student_macs=sm,
        student_widths={n: layer_widths(m) for n, m in student.nets().items()},
        states=int((~data.holdout).sum()), rounds=rounds, steps=(rounds + 1) * cfg.steps_per_round,
        heldout=_heldout(student, data.obs[data.holdout], data.targets[data.holdout], data.starts[data.holdout], dtype),
        history=history)
    if not use_env:
        report.note = "trained on logged observations only: with no env the student's return cannot be checked"
    elif cfg.eval_episodes:
        log(f"evaluating teacher and student on {cfg.eval_episodes} episodes (env seeds {cfg.eval_seed}..)")
        t = episode_returns(teacher, env_ckpt, cfg.eval_episodes, cfg.eval_seed)
        s = episode_returns(student, env_ckpt, cfg.eval_episodes, cfg.eval_seed)
        report.teacher_return = {**mean_ci95(t), "episodes": [float(v) for v in t]}
        report.student_return = {**mean_ci95(s), "episodes": [float(v) for v in s]}
        tmean = report.teacher_return["mean"]
        report.return_ratio = float(report.student_return["mean"] / tmean) if tmean > 0 else None
        report.eval_seeds = [cfg.eval_seed + i for i in range(cfg.eval_episodes)]
    return report


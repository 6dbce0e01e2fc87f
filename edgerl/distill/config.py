"""The typed settings of ``edgerl distill`` (one documented field each; flags are generated)."""

from __future__ import annotations

from dataclasses import dataclass

from edgerl.config import doc


@dataclass
class DistillConfig:
    """Policy distillation: a small student learns to act as the teacher does."""

    widths: list[int] = doc("Student hidden widths: the MLP's layers (SAC), or the image encoder's fully "
                            "connected layers (PPO/DQN). Ignored with --init.", [64, 64])
    channel_scale: float = doc("Image students: the teacher encoder's conv channels times this.", 0.5)
    rnn_hidden: int = doc("Recurrent teachers (LSTM/GRU): the student's memory size, per layer (0: the "
                          "teacher's). --widths sizes the MLP after it.", 0, min=0)
    sequence_length: int = doc("Recurrent teachers: time steps per training sequence (truncated "
                               "backpropagation through time).", 32, min=1)
    burn_in: int = doc("Recurrent teachers: steps run before each training sequence, without loss or "
                       "gradient, to bring the student's memory to where it is mid-episode.", 16, min=0)
    loss: str = doc("Continuous actions: 'action' (MSE of the tanh-squashed actions, what the robot sees) or "
                    "'mean' (MSE of the pre-tanh means). Discrete actions always use the KL of Rusu et al. "
                    "2016.", "action")
    temperature: float = doc("Discrete actions: temperature of the teacher's softmax; 0 picks 0.01 for "
                             "Q-values (DQN, as Rusu et al. 2016) and 1 for logits (PPO).", 0.0)
    rounds: int = doc("DAgger rounds after the first fit: each adds states visited by the student and "
                      "labelled by the teacher (needs the env; 0 with --observations). 8 rounds of 6000 steps "
                      "took a 32x32 HalfCheetah-v5 student from 92% to 97% of its teacher's return against "
                      "4 of 3000 (docs/benchmarks/compression.md).", 8)
    round_states: int = doc("States collected per DAgger round (and by the teacher when the checkpoint "
                            "has no replay buffer).", 5000)
    steps_per_round: int = doc("Gradient steps per round (the first fit is round 0).", 6000)
    replay_states: int = doc("Most recent replay-buffer states used (0: all).", 100_000)
    batch_size: int = doc("States per gradient step.", 256)
    lr: float = doc("Adam learning rate.", 1e-3)
    holdout: float = doc("Fraction of the first round's states held out to report the fit on.", 0.05)
    eval_episodes: int = doc("Episodes to compare teacher and student on (same env seeds; 0: no check).", 10)
    eval_seed: int = doc("Env seed of the first evaluation episode (episode i uses eval_seed + i).", 10_000)
    seed: int = doc("Seed of the student's weights, the batches and the rollouts.", 0)
    checkpoint_every: int = doc("Save the distillation state every N gradient steps (a rerun continues).", 1000)
    threads: int = doc("torch intra-op threads.", 1)
    progress: bool = doc("Show a progress bar.", True)

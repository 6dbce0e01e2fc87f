"""RL algorithms: SAC for continuous control; PPO and DQN for image-based envs."""

"""Training: the one trainer for every policy, policy checkpoints, and `drifting-train` (train.py)."""

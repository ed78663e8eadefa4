"""Learning-rate multipliers shared by the policy trainer and image_gen."""

from __future__ import annotations

import math


def lr_factor(step: int, progress: float, warmup_steps: int, schedule: str,
              warmup_end_progress: float = 0.0) -> float:
    """Multiplier of the base lr: linear warm-up over `warmup_steps`, then a cosine over the rest of the
    budget. `progress` in [0, 1] is the fraction of the budget used, `warmup_end_progress` the fraction used
    when warm-up ended, so the cosine starts at exactly 1 where the warm-up stops."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    remaining = (progress - warmup_end_progress) / max(1.0 - warmup_end_progress, 1e-12)
    return 0.5 * (1.0 + math.cos(math.pi * min(max(remaining, 0.0), 1.0)))

"""Exponential moving average of a network's weights, shared by the policy trainer and image_gen.

The decay of the `step`-th update (1-based) follows Diffusion Policy's warm-up,

    t = step - update_after_step - 1;   decay = 0 if t <= 0 else clamp(1 - (1 + t / inv_gamma)^-power,
                                                                      min_decay, max_decay),

so the first updates follow the live weights closely and the average is never dominated by the random
initial weights. image_gen's rule min(max_decay, (1 + s) / (10 + s)) at 0-based step s is the same formula
with power 1, inv_gamma 9 and update_after_step -1 (:func:`ratio_warmup_ema`).
"""

from __future__ import annotations

import copy

import torch


class EMA:
    """``ema.model`` is an eval-mode copy of the network whose floating-point parameters are averaged
    (buffers copied); ``update(model, step)`` after each optimiser step, ``step`` counted from 1."""

    def __init__(self, model: torch.nn.Module, power: float = 0.75, max_decay: float = 0.9999,
                 min_decay: float = 0.0, update_after_step: int = 0, inv_gamma: float = 1.0):
        if not 0.0 <= min_decay <= max_decay <= 1.0:
            raise ValueError(f"EMA needs 0 <= min_decay <= max_decay <= 1, got {min_decay} and {max_decay}")
        if power <= 0.0 or inv_gamma <= 0.0:
            raise ValueError(f"EMA power={power}, inv_gamma={inv_gamma}; expected both > 0")
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.power, self.max_decay, self.min_decay = power, max_decay, min_decay
        self.update_after_step, self.inv_gamma = update_after_step, inv_gamma

    def decay(self, step: int) -> float:
        """Decay used by the `step`-th update (1-based): 0 at first (a copy), then 1 - (1 + t)^-power."""
        t = max(0, step - self.update_after_step - 1)
        if t <= 0:
            return 0.0
        value = 1.0 - (1.0 + t / self.inv_gamma) ** -self.power
        return max(self.min_decay, min(value, self.max_decay))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        weight = 1.0 - self.decay(step)
        ema_params = [p for p in self.model.parameters() if p.dtype.is_floating_point]
        # An FSDP-sharded model (DTensor parameters) is gathered: the EMA keeps a full copy. A collective,
        # so every rank must update.
        params = [_full(p.detach()) for p in model.parameters() if p.dtype.is_floating_point]
        torch._foreach_lerp_(ema_params, params, weight)  # ema += weight * (param - ema)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_buffer.copy_(buffer)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged network's state_dict (the schedule is rebuilt from the config, not saved)."""
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)


def _full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def ratio_warmup_ema(model: torch.nn.Module, max_decay: float) -> EMA:
    """EMA whose `step`-th update (1-based) uses decay min(max_decay, step / (9 + step)), i.e. image_gen's
    min(max_decay, (1 + s) / (10 + s)) at 0-based step s: 0.1 at the first update, 0.5 at the ninth. Short
    runs sampled pure noise from a plain 0.99 EMA of the random initial weights."""
    if not 0.0 <= max_decay < 1.0:
        raise ValueError(f"ema decay={max_decay}; expected a value in [0, 1)")
    return EMA(model, power=1.0, max_decay=max_decay, update_after_step=-1, inv_gamma=9.0)

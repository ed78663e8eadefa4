"""A CPU-sized backbone: residual MLP over the flattened action chunk, conditioned by FiLM or concatenation.

Same call as :class:`ConditionalUnet1D` (sample [N, T, A], timestep, global_cond [B, E_obs] -> [N, T, A]),
so every policy can use either. Shape legend as in unet1d.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drifting_policy.model.unet1d import StepEncoder, broadcast_rows, conditioning

CONDITIONINGS = ("film", "concat")


class FiLMResidualBlock(nn.Module):
    """h + Linear(Mish(FiLM(Linear(LayerNorm(h))))), FiLM = (1 + scale) * y + shift from the conditioning."""

    def __init__(self, width: int, cond_dim: int | None):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.linear1 = nn.Linear(width, width)
        self.linear2 = nn.Linear(width, width)
        self.film = nn.Linear(cond_dim, 2 * width) if cond_dim else None

    def forward(self, h: Tensor, cond: Tensor | None) -> Tensor:
        """h [N, W], cond [B, E] with B | N (or None for concat conditioning) -> [N, W]."""
        y = self.linear1(self.norm(h))  # [N, W]
        if self.film is not None:
            batch, width = cond.shape[0], y.shape[1]
            scale, shift = self.film(cond).view(batch, 1, 2, width).unbind(dim=2)  # [B, 1, W] each
            y = (y.view(batch, -1, width) * (1 + scale) + shift).view(-1, width)  # [N, W]
        return h + self.linear2(F.mish(y))


class MLPBackbone(nn.Module):
    """Residual MLP head over the flattened chunk.

    Args:
        action_dim, horizon: A and T; the MLP sees T * A inputs and outputs.
        global_cond_dim: width of global_cond (obs features x obs_horizon).
        width, depth: hidden width and number of residual blocks.
        conditioning: 'film' (every block modulated by [step | obs]) or 'concat' ([step | obs] concatenated
            to the flattened chunk at the input).
        step_embed_dim: 0 for no step input (one-step heads); else sinusoidal step embedding width.
        zero_init_output: zero the output layer (see ConditionalUnet1D; never for a one-step generator).
    """

    def __init__(self, action_dim: int, horizon: int, global_cond_dim: int, width: int = 512, depth: int = 3,
                 conditioning: str = "film", step_embed_dim: int = 0, zero_init_output: bool = False):
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning={conditioning!r}; expected one of {CONDITIONINGS}")
        self.action_dim, self.horizon, self.conditioning = action_dim, horizon, conditioning
        self.step_encoder = StepEncoder(step_embed_dim) if step_embed_dim > 0 else None
        cond_dim = step_embed_dim + global_cond_dim
        film_dim = cond_dim if conditioning == "film" else None
        input_dim = horizon * action_dim + (cond_dim if conditioning == "concat" else 0)
        self.input = nn.Linear(input_dim, width)
        self.blocks = nn.ModuleList([FiLMResidualBlock(width, film_dim) for _ in range(depth)])
        self.output = nn.Sequential(nn.LayerNorm(width), nn.Mish(), nn.Linear(width, horizon * action_dim))
        self._init_weights(zero_init_output)

    def _init_weights(self, zero_init_output: bool) -> None:
        for block in self.blocks:
            if block.film is not None:
                # FiLM starts as the identity ((1 + 0) * y + 0): conditioning is learned as a perturbation of
                # a working unconditional net instead of scaling activations at random from step 0.
                nn.init.zeros_(block.film.weight)
                nn.init.zeros_(block.film.bias)
        if zero_init_output:
            nn.init.zeros_(self.output[-1].weight)
            nn.init.zeros_(self.output[-1].bias)

    def forward(self, sample: Tensor, timestep: Tensor | int | None, global_cond: Tensor) -> Tensor:
        """sample [N, T, A], timestep (None | scalar | [B] | [N]), global_cond [B, E_obs] -> [N, T, A]."""
        num_rows = sample.shape[0]
        if sample.shape[1:] != (self.horizon, self.action_dim):
            raise ValueError(f"sample is {list(sample.shape)}; this MLP was built for [N, {self.horizon}, "
                             f"{self.action_dim}]")
        cond = conditioning(self.step_encoder, timestep, global_cond, num_rows)  # [B or N, E]
        flat = sample.reshape(num_rows, -1)  # [N, T * A]
        if self.conditioning == "concat":
            flat = torch.cat([flat, broadcast_rows(cond, num_rows)], dim=-1)  # [N, T * A + E]
            cond = None
        h = self.input(flat)  # [N, W]
        for block in self.blocks:
            h = block(h, cond)
        return self.output(h).view(num_rows, self.horizon, self.action_dim)  # [N, T, A]

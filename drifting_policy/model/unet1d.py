"""ConditionalUnet1D: Diffusion Policy's temporal UNet over action chunks, with FiLM conditioning.

Shape legend: N rows of samples (B observations x G samples per observation for drifting, B otherwise),
B conditioning rows, T = prediction_horizon, A = action_dim, C channels, E conditioning width.

The conditioning vector of a row is [step embedding | global_cond] (global_cond = obs features x
obs_horizon). It is computed once per conditioning row and broadcast to the G sample rows that share it, so a
drifting step encodes each observation once however many chunks it generates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

# Sinusoidal frequencies span 1 .. 1/10000 of the step index, as in DDPM / Diffusion Policy.
MAX_PERIOD = 10000.0


class SinusoidalPosEmb(nn.Module):
    """[N] integer or float steps -> [N, dim] sin/cos features."""

    def __init__(self, dim: int):
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"step embedding dim={dim}; expected an even number >= 4")
        self.dim = dim

    def forward(self, steps: Tensor) -> Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=steps.device) * (-math.log(MAX_PERIOD) / (half - 1)))
        angles = steps.float()[:, None] * freqs[None, :]  # [N, dim/2]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)  # [N, dim]


class StepEncoder(nn.Sequential):
    """Diffusion-step embedding: sinusoid -> Linear(4 dim) -> Mish -> Linear(dim)."""

    def __init__(self, dim: int):
        super().__init__(SinusoidalPosEmb(dim), nn.Linear(dim, dim * 4), nn.Mish(), nn.Linear(dim * 4, dim))


def conditioning(step_encoder: nn.Module | None, timestep: Tensor | int | None, global_cond: Tensor,
                 num_rows: int) -> Tensor:
    """Conditioning vectors [step embedding | global_cond], one per conditioning row.

    Args:
        timestep: None (no step input), a scalar, [B] (one per conditioning row) or [N] (one per sample row).
        global_cond: [B, E_obs]; B must divide the number of sample rows N.
        num_rows: N.

    Returns: [B, E] when every sample row of a group shares its timestep, else [N, E].
    """
    batch = global_cond.shape[0]
    if batch == 0 or num_rows % batch:
        raise ValueError(f"sample has {num_rows} rows but global_cond has {batch}; the sample rows must be "
                         "B x G with the G samples of one observation adjacent")
    if step_encoder is None:
        if timestep is not None:
            raise ValueError("this backbone was built without a step embedding (step_embed_dim=0) but got a "
                             "timestep; pass timestep=None or build it with step_embed_dim > 0")
        return global_cond
    if timestep is None:
        raise ValueError("this backbone has a step embedding; pass a timestep (e.g. 0)")
    steps = torch.as_tensor(timestep, device=global_cond.device).reshape(-1)
    if steps.numel() == num_rows and num_rows != batch:  # one step per sample row: broadcast the obs instead
        global_cond = global_cond.repeat_interleave(num_rows // batch, dim=0)  # [N, E_obs]
        batch = num_rows
    if steps.numel() not in (1, batch):
        raise ValueError(f"timestep has {steps.numel()} entries; expected 1, {batch} or {num_rows}")
    step_features = step_encoder(steps.expand(batch))  # [B, E_step]
    return torch.cat([step_features, global_cond], dim=-1)  # [B, E]


def broadcast_rows(features: Tensor, num_rows: int) -> Tensor:
    """[B, ...] -> [N, ...] by repeating each row N/B times (a view where possible, no copy for B = N)."""
    batch = features.shape[0]
    if batch == num_rows:
        return features
    repeats = num_rows // batch
    return features.unsqueeze(1).expand(batch, repeats, *features.shape[1:]).reshape(num_rows,
                                                                                     *features.shape[1:])


class Conv1dBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish, length preserving."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_groups: int):
        super().__init__(nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                         nn.GroupNorm(n_groups, out_channels), nn.Mish())


class ConditionalResidualBlock1D(nn.Module):
    """Two conv blocks; FiLM (scale and bias from the conditioning) between them; residual 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int, n_groups: int,
                 film_scale: bool):
        super().__init__()
        self.out_channels = out_channels
        self.film_scale = film_scale
        self.conv1 = Conv1dBlock(in_channels, out_channels, kernel_size, n_groups)
        self.conv2 = Conv1dBlock(out_channels, out_channels, kernel_size, n_groups)
        film_channels = out_channels * (2 if film_scale else 1)
        self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, film_channels))
        self.residual = (nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels
                         else nn.Identity())

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """x [N, C_in, T], cond [B, E] with B | N -> [N, C_out, T]."""
        out = self.conv1(x)  # [N, C, T]
        num_rows, batch = x.shape[0], cond.shape[0]
        embed = self.cond_encoder(cond)  # [B, C or 2C], once per observation
        grouped = out.view(batch, num_rows // batch, self.out_channels, -1)  # [B, G, C, T]
        if self.film_scale:
            scale, bias = embed.view(batch, 1, 2, self.out_channels, 1).unbind(dim=2)  # [B, 1, C, 1] each
            grouped = grouped * scale + bias
        else:
            grouped = grouped + embed.view(batch, 1, self.out_channels, 1)
        out = self.conv2(grouped.reshape(num_rows, self.out_channels, -1))  # [N, C, T]
        return out + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """Diffusion Policy's ConditionalUnet1D (down_dims, kernel 5, 8 groups, FiLM), one file, no copies.

    Args:
        action_dim: A, channels of the sample.
        global_cond_dim: width of global_cond (obs features x obs_horizon).
        down_dims: channels per level; the horizon T must be divisible by 2**(len(down_dims) - 1).
        kernel_size, n_groups: conv kernel and GroupNorm groups.
        step_embed_dim: diffusion-step embedding width; 0 builds no step input (one-step heads).
        film_scale: FiLM with scale and bias (Diffusion Policy's cond_predict_scale) or bias only.
        zero_init_output: zero the last conv, so the network starts by predicting 0 (the mean of the noise
            for epsilon prediction, the centre of the normalised range for regression). Never for a
            one-step generator: it would start with all samples identical.
    """

    def __init__(self, action_dim: int, global_cond_dim: int, down_dims: Sequence[int] = (256, 512, 1024),
                 kernel_size: int = 5, n_groups: int = 8, step_embed_dim: int = 256, film_scale: bool = True,
                 zero_init_output: bool = False):
        super().__init__()
        self.step_encoder = StepEncoder(step_embed_dim) if step_embed_dim > 0 else None
        cond_dim = step_embed_dim + global_cond_dim
        self.num_levels = len(down_dims)

        def block(c_in: int, c_out: int) -> ConditionalResidualBlock1D:
            return ConditionalResidualBlock1D(c_in, c_out, cond_dim, kernel_size, n_groups, film_scale)

        dims = [action_dim, *down_dims]
        pairs = list(zip(dims[:-1], dims[1:], strict=True))
        self.down = nn.ModuleList()
        for level, (c_in, c_out) in enumerate(pairs):
            last = level == len(pairs) - 1
            self.down.append(nn.ModuleList([block(c_in, c_out), block(c_out, c_out),
                                            nn.Identity() if last else nn.Conv1d(c_out, c_out, 3, 2, 1)]))
        self.mid = nn.ModuleList([block(dims[-1], dims[-1]), block(dims[-1], dims[-1])])
        self.up = nn.ModuleList()
        for c_in, c_out in reversed(pairs[1:]):  # every up level upsamples: mirrors the down levels
            self.up.append(nn.ModuleList([block(c_out * 2, c_in), block(c_in, c_in),
                                          nn.ConvTranspose1d(c_in, c_in, 4, 2, 1)]))
        self.final = nn.Sequential(Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
                                   nn.Conv1d(down_dims[0], action_dim, 1))
        self._init_weights(zero_init_output)

    def _init_weights(self, zero_init_output: bool) -> None:
        # PyTorch's default init, as Diffusion Policy; only the output layer is optionally zeroed.
        if zero_init_output:
            nn.init.zeros_(self.final[-1].weight)
            nn.init.zeros_(self.final[-1].bias)

    def forward(self, sample: Tensor, timestep: Tensor | int | None, global_cond: Tensor) -> Tensor:
        """sample [N, T, A], timestep (None | scalar | [B] | [N]), global_cond [B, E_obs] -> [N, T, A].

        N = B x G: the G sample rows of one observation are adjacent and share its conditioning.
        """
        horizon = sample.shape[1]
        if horizon % 2 ** (self.num_levels - 1):
            raise ValueError(f"sample horizon T={horizon} is not divisible by 2**(len(down_dims)-1) = "
                             f"{2 ** (self.num_levels - 1)}; change prediction_horizon or down_dims")
        cond = conditioning(self.step_encoder, timestep, global_cond, sample.shape[0])  # [B or N, E]
        x = sample.transpose(1, 2)  # [N, A, T]
        skips = []
        for block1, block2, downsample in self.down:
            x = block2(block1(x, cond), cond)
            skips.append(x)
            x = downsample(x)  # [N, C, T / 2] except at the last level
        for block in self.mid:
            x = block(x, cond)
        for block1, block2, upsample in self.up:
            x = torch.cat([x, skips.pop()], dim=1)  # [N, 2C, T']
            x = upsample(block2(block1(x, cond), cond))
        return self.final(x).transpose(1, 2)  # [N, T, A]

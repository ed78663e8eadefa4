"""Feature encoder of the drift loss: a ResNet-GN masked autoencoder (paper Sec. A.5, "latent-MAE").

One network for both inputs the drift loss reads: pixels (``in_channels=1, input_size=32``, the pixel MAE)
and VAE latents (e.g. ``in_channels=4, input_size=8`` for the project VAE, the paper's latent-MAE, which lets
a latent-space drifting step skip the VAE decoder).

Encoder: 3x3 stem without downsampling, stages of *basic* residual blocks with GroupNorm, channels
(w, 2w, 4w, ...), stride 2 at the start of every stage but the first (32x32 input, four stages -> maps 32, 16,
8, 4; 8x8 latents, three stages -> 8, 4, 2). Decoder: U-Net (bilinear 2x up, concat the skip, GN,
2 x (conv3x3 + GN + ReLU)), 1x1 output conv. Pre-training masks 2x2 patches with probability 0.5 and takes
the L2 loss on the masked area only. After pre-training only the encoder is used, frozen: its intermediate
maps are the feature maps of :mod:`image_gen.objectives.features`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from drifting_policy.common.io import save_weights
from image_gen.weight_files import build_config, load_into, read_weights


@dataclass
class MAEConfig:
    in_channels: int = 1
    width: int = 16  # channels of stage 1; paper: 256-640
    blocks: tuple[int, ...] = (1, 1, 1, 1)  # basic blocks per stage; paper: ResNet-34 (3, 4, 6, 3)
    mask_ratio: float = 0.5
    mask_patch: int = 2
    input_size: int = 32  # side of the square input: 32 Fashion-MNIST pixels, 8 project-VAE latents

    def __post_init__(self):
        self.blocks = tuple(int(b) for b in self.blocks)
        if self.width < 4 or self.width % 4:
            raise ValueError(f"width={self.width}; expected a multiple of 4 (GroupNorm groups of 4 channels)")
        if not self.blocks or min(self.blocks) < 1:
            raise ValueError(f"blocks={self.blocks}; expected one or more stages with >= 1 block each")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio={self.mask_ratio}; expected a value in (0, 1)")
        if self.input_size % self.mask_patch:
            raise ValueError(f"input_size={self.input_size} is not divisible by "
                             f"mask_patch={self.mask_patch}; change one of them")
        deepest = 2 ** (len(self.blocks) - 1)  # every stage after the first halves the map
        if self.input_size % deepest:
            raise ValueError(f"input_size={self.input_size} with {len(self.blocks)} stages: the maps halve "
                             f"{len(self.blocks) - 1} times, so input_size must be a multiple of {deepest}; "
                             "use fewer stages (blocks=[...])")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the inputs the network is built for."""
        return (self.in_channels, self.input_size, self.input_size)

    @property
    def stage_channels(self) -> tuple[int, ...]:
        return tuple(self.width * 2**i for i in range(len(self.blocks)))


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4), channels)


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm1 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = group_norm(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), group_norm(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNetGNEncoder(nn.Module):
    """x [B, C, H, W] -> feature maps: the output of every 2nd block of each stage and of each stage."""

    def __init__(self, config: MAEConfig):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, config.width, 3, 1, 1, bias=False),
            group_norm(config.width),
            nn.ReLU(),
        )
        self.stages = nn.ModuleList()
        in_channels = config.width
        for index, (channels, count) in enumerate(zip(config.stage_channels, config.blocks, strict=True)):
            stride = 1 if index == 0 else 2
            blocks = [
                BasicBlock(in_channels if i == 0 else channels, channels, stride if i == 0 else 1)
                for i in range(count)
            ]
            self.stages.append(nn.ModuleList(blocks))
            in_channels = channels

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        """Per stage, the maps [B, C_s, H_s, W_s] after blocks 2, 4, ... and after the last block."""
        x = self.stem(x)
        per_stage = []
        for blocks in self.stages:
            maps = []
            for index, block in enumerate(blocks):
                x = block(x)
                if index % 2 == 1 or index == len(blocks) - 1:
                    maps.append(x)
            per_stage.append(maps)
        return per_stage


class UpBlock(nn.Module):
    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.norm = group_norm(in_channels + skip_channels)
        self.convs = nn.Sequential(
            nn.Conv2d(in_channels + skip_channels, out_channels, 3, 1, 1),
            group_norm(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1),
            group_norm(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(self.norm(torch.cat([x, skip], dim=1)))


class MAE(nn.Module):
    """Masked autoencoder; ``encoder`` alone is the frozen feature network of the drift loss."""

    def __init__(self, config: MAEConfig):
        super().__init__()
        self.config = config
        self.encoder = ResNetGNEncoder(config)
        channels = config.stage_channels
        self.up_blocks = nn.ModuleList(
            UpBlock(channels[i + 1], channels[i], channels[i]) for i in reversed(range(len(channels) - 1))
        )
        self.head = nn.Conv2d(channels[0], config.in_channels, 1)

    def random_mask(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """[B, 1, H, W] float mask, 1 = hidden: 2x2 patches hidden independently with p = mask_ratio."""
        patch = self.config.mask_patch
        batch, _, height, width = x.shape
        if height % patch or width % patch:
            raise ValueError(f"input {height}x{width} is not divisible by mask_patch={patch}")
        coarse = (
            torch.rand(batch, 1, height // patch, width // patch, generator=generator)
            < self.config.mask_ratio
        )
        mask = coarse.float().repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)
        return mask.to(x.device)

    def reconstruct(self, x: Tensor) -> Tensor:
        stage_maps = [maps[-1] for maps in self.encoder(x)]
        out = stage_maps[-1]
        for up, skip in zip(self.up_blocks, reversed(stage_maps[:-1]), strict=True):
            out = up(out, skip)
        return self.head(out)  # [B, C, H, W]

    def loss(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Masked reconstruction loss: MSE over the hidden pixels only; returns (loss, mask)."""
        mask = self.random_mask(x, generator)  # [B, 1, H, W]
        recon = self.reconstruct(x * (1.0 - mask))  # hidden pixels are zeroed at the input
        error = (recon.float() - x.float()).square() * mask  # [B, C, H, W]
        return error.sum() / (mask.sum() * x.shape[1]).clamp_min(1.0), mask


def save_mae(model: MAE, path: str | Path, extra: dict | None = None) -> None:
    """Weights plus ``mae_config`` (and ``extra``) in one safetensors file (atomic write)."""
    save_weights(model.state_dict(), path, {"mae_config": dataclasses.asdict(model.config), **(extra or {})})


def load_mae(path: str | Path, device: torch.device | str = "cpu") -> MAE:
    """MAE from a safetensors file written by :func:`save_mae` (config in the metadata), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"MAE weights {path} not found; train them first with `image-gen-train-mae` "
            "(or point encoder_path at an existing mae.safetensors)"
        )
    hint = "point encoder_path at the mae.safetensors of an image-gen-train-mae run"
    weights, metadata = read_weights(path, "mae_config", "an MAE encoder", hint)
    model = MAE(build_config(MAEConfig, metadata["mae_config"], path, "mae_config"))
    load_into(model, weights, path, hint)
    return model.to(device).eval()

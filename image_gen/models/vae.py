"""Latent space: diffusers' ``AutoencoderKL``, either a small KL autoencoder trained by the project on
Fashion-MNIST (32x32x1 -> 8x8x4) or the SD-VAE loaded from a local folder (``config.json`` + weights).

Latents are normalised: z = (mean(x) - shift) * scale, with shift/scale measured on training data after
training (the SD-VAE uses its ``scaling_factor`` 0.18215 and no shift), so the generator sees ~unit variance.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from drifting_policy.common.io import save_weights
from image_gen.weight_files import build_config, load_into, read_weights

if TYPE_CHECKING:  # diffusers is imported where a VAE is built: its import costs seconds (torch._dynamo),
    from diffusers import AutoencoderKL  # and every image-gen-train start registers the VAE config


@dataclass
class VAEConfig:
    in_channels: int = 1
    block_out_channels: tuple[int, ...] = (32, 64, 64)  # len - 1 downsamplings: 32 -> 8
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 16

    def __post_init__(self):
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(
                f"block_out_channels={self.block_out_channels} must be multiples of "
                f"norm_num_groups={self.norm_num_groups}"
            )

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)


def build_autoencoder(config: VAEConfig) -> AutoencoderKL:
    from diffusers import AutoencoderKL

    blocks = len(config.block_out_channels)
    return AutoencoderKL(
        in_channels=config.in_channels,
        out_channels=config.in_channels,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        latent_channels=config.latent_channels,
        norm_num_groups=config.norm_num_groups,
    )


class LatentVAE(nn.Module):
    """Frozen-able wrapper: ``encode_mean`` images -> normalised latents; ``decode`` latents -> images."""

    def __init__(self, autoencoder: AutoencoderKL, config: VAEConfig | None, image_channels: int = 1):
        super().__init__()
        self.autoencoder = autoencoder
        self.config = config
        self.image_channels = image_channels  # grey images run through an RGB SD-VAE as 3 equal channels
        self.register_buffer("shift", torch.zeros(()))
        self.register_buffer("scale", torch.ones(()))

    def _to_model(self, x: Tensor) -> Tensor:
        channels = self.autoencoder.config.in_channels
        return x.repeat(1, channels // x.shape[1], 1, 1) if x.shape[1] != channels else x

    def encode_dist(self, x: Tensor):
        return self.autoencoder.encode(self._to_model(x)).latent_dist

    def encode_mean(self, x: Tensor) -> Tensor:
        return (self.encode_dist(x).mean - self.shift) * self.scale  # [B, c, h, w]

    def decode(self, z: Tensor) -> Tensor:
        out = self.autoencoder.decode(z / self.scale + self.shift).sample  # [B, C, H, W]
        return out.mean(dim=1, keepdim=True) if out.shape[1] != self.image_channels else out

    @torch.no_grad()
    def fit_normalisation(self, images: Tensor) -> None:
        """Set shift/scale so latents of ``images`` have mean 0 and std 1 (one scalar each)."""
        self.shift.zero_()
        self.scale.fill_(1.0)
        latents = self.encode_dist(images).mean
        self.shift.copy_(latents.mean())
        self.scale.copy_(1.0 / latents.std())


def save_vae(vae: LatentVAE, path: Path, extra: dict | None = None) -> None:
    """Weights plus ``vae_config`` (and ``extra``) in one safetensors file (atomic write)."""
    save_weights(vae.state_dict(), path, {"vae_config": dataclasses.asdict(vae.config), **(extra or {})})


def load_vae(path: str | Path, device: torch.device | str = "cpu") -> LatentVAE:
    """A project VAE (vae.safetensors from image-gen-train-vae) or an SD-VAE folder (diffusers layout)."""
    path = Path(path)
    if path.is_dir():  # e.g. a local copy of stabilityai/sd-vae-ft-mse
        from diffusers import AutoencoderKL

        autoencoder = AutoencoderKL.from_pretrained(str(path))
        vae = LatentVAE(autoencoder, None)
        vae.scale.fill_(autoencoder.config.scaling_factor)
    elif path.is_file():
        hint = "pass the vae.safetensors of an image-gen-train-vae run, or a local SD-VAE folder"
        weights, metadata = read_weights(path, "vae_config", "a VAE", hint)
        config = build_config(VAEConfig, metadata["vae_config"], path, "vae_config")
        vae = LatentVAE(build_autoencoder(config), config)
        load_into(vae, weights, path, hint)
    else:
        raise FileNotFoundError(
            f"VAE {path} not found; train one with `image-gen-train-vae` or pass a local "
            "SD-VAE folder (config.json + diffusion_pytorch_model.safetensors)"
        )
    return vae.to(device).eval().requires_grad_(False)

"""The VAE objective (``image-gen-train-vae``): the small KL autoencoder (diffusers AutoencoderKL) of
latent-space runs.

32x32x1 images -> 8x8x4 latents. Loss: MSE reconstruction + kl_weight * KL (per pixel). After the last step
the latent shift/scale are fitted on training images and runs/<run_name>/vae.safetensors is written with the
test reconstruction MSE in its metadata; a generator run with ``space=latent vae_path=...`` caches the
training latents next to that file once. One process (no torchrun).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from image_gen.data.fmnist import load_pixels
from image_gen.models.vae import LatentVAE, VAEConfig, build_autoencoder, save_vae
from image_gen.objectives.base import Objective
from image_gen.training.config import ImageTrainConfig

TEST_PER_CLASS = 100  # test images per class for the reconstruction MSE
NORMALISATION_IMAGES = 2000  # training images the latent shift/scale are fitted on


@dataclass
class VAETrainConfig(ImageTrainConfig):
    objective: str = "vae"
    run_name: str = "vae"
    max_steps: int | None = 2000
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int | None = None
    lr_schedule: str = "cosine"
    grad_clip: float | None = 1.0
    ema: bool = False
    vae: VAEConfig = field(default_factory=VAEConfig)
    batch_size: int = 64
    kl_weight: float = 1e-4

    def __post_init__(self):
        if isinstance(self.vae, dict):
            self.vae = VAEConfig(**self.vae)
        super().__post_init__()
        if self.batch_size < 1 or self.grad_accum != 1:
            raise ValueError(f"batch_size={self.batch_size}, grad_accum={self.grad_accum}; the VAE trains "
                             "whole batches: set batch_size >= 1 and grad_accum=1")


class VAEObjective(Objective):
    name = "vae"
    distributed = False

    def __init__(self, config: VAETrainConfig, dist_info, device):
        super().__init__(config, dist_info, device)
        self.images, _ = load_pixels("train", config.data_root, config.limit_per_class)  # [N, 1, 32, 32]
        self.test_images, _ = load_pixels("test", config.data_root, TEST_PER_CLASS)
        self.model = LatentVAE(build_autoencoder(config.vae), config.vae).to(self.device)

    @property
    def images_per_step(self) -> int:
        return self.config.batch_size

    def sample_batch(self, generator: torch.Generator) -> Tensor:
        index = torch.randint(self.images.shape[0], (self.config.batch_size,), generator=generator)
        return self.images[index].to(self.device)  # [B, 1, 32, 32]

    def micro_batches(self, batch: Tensor) -> list[Tensor]:
        return [batch]

    def compute_loss(self, x: Tensor, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        posterior = self.model.encode_dist(x)
        noise = torch.randn(posterior.mean.shape, generator=generator).to(self.device)
        recon = self.model.autoencoder.decode(posterior.mean + posterior.std * noise).sample  # [B, 1, 32, 32]
        recon_mse = (recon - x).square().mean()
        kl = posterior.kl().mean()
        loss = recon_mse + self.config.kl_weight * kl / x[0].numel()
        return loss, {"recon_mse": float(recon_mse.detach()), "kl": float(kl.detach()) / x[0].numel()}

    def finish(self, run_dir: Path, last_metrics: dict[str, float], train_seconds: float) -> dict[str, float]:
        """Fit the latent normalisation, score test reconstructions, write vae.safetensors."""
        vae, device = self.model.eval(), self.device
        test = self.test_images.to(device)
        with torch.no_grad():
            vae.fit_normalisation(self.images[:NORMALISATION_IMAGES].to(device))
            test_mse = float((vae.decode(vae.encode_mean(test)) - test).square().mean())
        path = Path(run_dir) / "vae.safetensors"
        save_vae(vae, path, {"test_mse": test_mse, "steps": self.max_steps(), "train_seconds": train_seconds})
        print(f"VAE saved to {path}: test reconstruction MSE {test_mse:.4f} (pixels in [-1, 1])")
        return {"val/test_mse": test_mse}

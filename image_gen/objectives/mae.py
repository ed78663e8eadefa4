"""The MAE objective (``image-gen-train-mae``): pre-train the drift loss's feature encoder (ResNet-GN MAE) by
masked reconstruction on Fashion-MNIST train: its pixels (space=pixel) or its latents under a project VAE
(space=latent, the paper's latent-MAE; the same latent cache the generators read, flips off).

Writes runs/<run_name>/mae.safetensors (weights + config and the final result in its metadata; a latent-MAE
also records its VAE's weight hash, which the drifting objective checks) after the last step. Distributed:
every rank draws the whole global batch's randomness (indices, flips, masks) from the same generator and
reconstructs its rows ``rank*grad_accum ...`` in ``grad_accum`` micro-batches; the loss is normalised by the
*global* count of hidden pixels, so W ranks x grad_accum A equal one process with the same batch_size (up to
float summation order), and a checkpoint resumes on any world size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from image_gen.data.fmnist import load_pixels
from image_gen.data.latents import check_space, train_latents, weights_hash
from image_gen.distributed import split_groups
from image_gen.models.mae import MAE, MAEConfig, save_mae
from image_gen.objectives.base import Objective
from image_gen.runtime import autocast
from image_gen.training.config import ImageTrainConfig

TEST_PER_CLASS = 50  # held-out test images per class for the final masked-MSE
TEST_SEED = 10_000  # mask seed of that score: the same masks for every run


@dataclass
class MAETrainConfig(ImageTrainConfig):
    objective: str = "mae"
    run_name: str = "mae"
    max_steps: int | None = 1000
    lr: float = 2e-3
    lr_schedule: str = "cosine"
    ema: bool = False  # the encoder is used as trained
    log_every: int = 50
    checkpoint_every: int = 500
    mae: MAEConfig = field(default_factory=MAEConfig)
    batch_size: int = 128
    space: str = "pixel"  # pixel: 32x32x1 images; latent: their latents under vae_path (a latent-MAE)
    vae_path: str | None = None  # latent space: a vae.safetensors from image-gen-train-vae

    def __post_init__(self):
        if isinstance(self.mae, dict):
            self.mae = MAEConfig(**self.mae)
        super().__post_init__()
        check_space(self.space, self.vae_path)
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size}; expected >= 1")
        if self.fsdp:
            raise ValueError("fsdp=true: the MAE has no DiT blocks to shard; it trains with DDP (fsdp=false)")


class MaskedError(nn.Module):
    """DDP-wrappable masked reconstruction: sum of squared errors over the hidden pixels of x [b, C, H, W]."""

    def __init__(self, mae: MAE):
        super().__init__()
        self.mae = mae

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        recon = self.mae.reconstruct(x * (1.0 - mask))  # hidden pixels are zeroed at the input
        return ((recon.float() - x.float()).square() * mask).sum()


class MAEObjective(Objective):
    name = "mae"

    def __init__(self, config: MAETrainConfig, dist_info, device):
        super().__init__(config, dist_info, device)
        self.rows = split_groups(config.batch_size, self.dist, config.grad_accum, "batch_size")
        self.images, _ = load_pixels("train", config.data_root, config.limit_per_class)  # [N, 1, 32, 32]
        self.test_images, _ = load_pixels("test", config.data_root, TEST_PER_CLASS)
        self.vae = None
        if config.space == "latent":
            self._encode_latents()  # images become [N, c, h, w] latents
        if tuple(self.images.shape[1:]) != config.mae.input_shape:
            raise ValueError(
                f"mae.in_channels={config.mae.in_channels}, mae.input_size={config.mae.input_size} but the "
                f"{config.space} samples are {list(self.images.shape[1:])}; set mae.in_channels="
                f"{self.images.shape[1]} mae.input_size={self.images.shape[-1]}"
            )
        self.model = MAE(config.mae).to(self.device)
        self.masked_error = MaskedError(self.model)

    def _encode_latents(self) -> None:
        """Train images -> the generators' cached latents (same VAE and limit); test images encoded here."""
        from image_gen.models.vae import load_vae

        cfg = self.config
        self.vae = load_vae(cfg.vae_path, self.device)
        self.images = train_latents(self.vae, self.images, cfg.vae_path, cfg.limit_per_class, self.dist,
                                    self.device)
        with torch.no_grad():
            self.test_images = self.vae.encode_mean(self.test_images.to(self.device)).float().cpu()

    @property
    def network(self) -> nn.Module:
        return self.masked_error

    @property
    def images_per_step(self) -> int:
        return self.config.batch_size

    def sample_batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        size, device = self.config.batch_size, self.device
        index = torch.randint(self.images.shape[0], (size,), generator=generator)
        batch = self.images[index].to(device)  # [B, C, H, W], the whole global batch on every rank
        flip = torch.rand(size, generator=generator) < 0.5  # horizontal flips (drawn in both spaces)
        if self.vae is None:  # a mirrored latent is not the latent of the mirrored image: no flips there
            batch[flip.to(device)] = batch[flip.to(device)].flip(-1)
        mask = self.model.random_mask(batch, generator)  # [B, 1, H, W], same draws as MAE.loss
        hidden = (mask.sum() * batch.shape[1]).clamp_min(1.0)  # global count: micro-batch losses add up
        return batch, mask, hidden

    def micro_batches(self, batch):
        return [(batch, rows) for rows in self.rows]

    def compute_loss(self, micro, generator) -> tuple[Tensor, dict[str, float]]:
        (images, mask, hidden), rows = micro
        with autocast(self.device):
            # x world_size: DDP averages gradients over ranks, the global loss is their sum
            loss = self.wrapped(images[rows], mask[rows]) / hidden * self.dist.world_size
        return loss, {}

    def finish(self, run_dir: Path, last_metrics: dict[str, float], train_seconds: float) -> dict[str, float]:
        """Masked MSE on held-out test images (fixed masks); rank 0 writes mae.safetensors."""
        with torch.no_grad(), autocast(self.device):
            test_images = self.test_images.to(self.device)
            test_loss, _ = self.model.eval().loss(test_images, torch.Generator().manual_seed(TEST_SEED))
        result = {"train/loss": last_metrics.get("train/loss", float("nan")),  # nan: resumed at the end
                  "val/masked_mse": test_loss.item(), "steps": self.max_steps()}
        provenance = {"space": self.config.space}
        if self.vae is not None:
            provenance.update(vae_path=self.config.vae_path, vae_hash=weights_hash(self.vae))
        if self.dist.is_main:
            save_mae(self.model, Path(run_dir) / "mae.safetensors", {"result": result, **provenance})
            print(f"MAE saved to {Path(run_dir) / 'mae.safetensors'}: {result}")
        return result

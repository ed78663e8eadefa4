"""What the two DiT generator objectives (drifting, flow) share: pixel or VAE-latent training data, the DiT
config, sample grids decoded to pixels, and the model.safetensors that image-gen-eval and -sample read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from drifting_policy.common.io import save_weights
from image_gen.data.fmnist import load_pixels
from image_gen.data.latents import check_space, train_latents
from image_gen.models.dit import DiTConfig
from image_gen.objectives.base import Objective
from image_gen.run_folder import MODEL_FILE
from image_gen.training.config import ImageTrainConfig

GRID_SEED = 12345  # noise of the sample grids: the same images at every step, comparable across runs


@dataclass
class GeneratorTrainConfig(ImageTrainConfig):
    space: str = "pixel"  # pixel: 32x32x1 images; latent: latents of vae_path
    vae_path: str | None = None  # latent space: a vae.safetensors from image-gen-train-vae
    model: DiTConfig = field(default_factory=DiTConfig)

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = DiTConfig(**self.model)
        super().__post_init__()
        check_space(self.space, self.vae_path)


class GeneratorObjective(Objective):
    """Loads ``vae`` (None in pixel space), ``samples`` [N, C, H, W], ``labels`` [N] and ``pixel_shape``
    ((C, H, W) of the images, before any encoding); writes model.safetensors (``ema.*`` and ``model.*``
    weights, DiT config and provenance in the metadata)."""

    def _load_data(self) -> None:
        cfg = self.config
        self.vae = None
        if cfg.space == "latent":
            from image_gen.models.vae import load_vae

            self.vae = load_vae(cfg.vae_path, self.device)
        images, self.labels = load_pixels("train", cfg.data_root, cfg.limit_per_class)
        self.pixel_shape = tuple(images.shape[1:])
        if self.vae is not None:  # the same cache file for every objective using this VAE and limit
            images = train_latents(self.vae, images, cfg.vae_path, cfg.limit_per_class, self.dist,
                                   self.device)
        self.samples = images
        shape = tuple(images.shape[1:])
        if (cfg.model.in_channels, cfg.model.input_size) != (shape[0], shape[-1]):
            raise ValueError(
                f"model.in_channels={cfg.model.in_channels}, model.input_size={cfg.model.input_size} "
                f"but {cfg.space} samples are {list(shape)}; set them to match"
            )

    def decode(self, x: Tensor) -> Tensor:
        """Samples [n, C, H, W] in the training space -> pixels (latents through the frozen VAE)."""
        return x if self.vae is None else self.vae.decode(x).float()

    def model_metadata(self) -> dict:
        cfg = self.config
        return {"dit_config": dataclasses.asdict(cfg.model), "space": cfg.space, "vae_path": cfg.vae_path}

    def export_checkpoint(self, run_dir: Path, weights: dict[str, Tensor], step: int) -> None:
        save_weights(weights, Path(run_dir) / MODEL_FILE, {**self.model_metadata(), "step": step})

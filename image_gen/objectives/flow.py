"""The flow objective (``image-gen-train-flow``): the rectified-flow baseline on the drifting run's data.

Rectified flow (Liu et al. 2022; Lipman et al. 2022): x_t = (1 - t) * noise + t * data, t ~ U[0, 1]; the
network (image_gen.models.flow_dit.FlowDiT) predicts the velocity v = data - noise. A share ``label_drop`` of
labels is replaced by the null class, for CFG at sampling (image_gen.sampling.euler_sample).

Same DiT sizes, same pixel / latent data (and latent cache) as the drifting objective; model.safetensors has
``model_kind: flow`` in its metadata. Distributed: the batch's rows are cut into W * grad_accum micro-batches
like the MAE's, and each micro-batch's mean loss is weighted by its share of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from image_gen.data.fmnist import NUM_CLASSES
from image_gen.distributed import split_groups
from image_gen.models.flow_dit import MODEL_KIND, FlowDiT
from image_gen.objectives.generator import GRID_SEED, GeneratorObjective, GeneratorTrainConfig
from image_gen.runtime import autocast
from image_gen.sampling import euler_sample


@dataclass
class FlowTrainConfig(GeneratorTrainConfig):
    objective: str = "flow"
    run_name: str = "flow"
    max_steps: int | None = 200
    warmup_steps: int | None = 50
    log_every: int = 20
    sample_every: int = 100
    checkpoint_every: int = 100
    batch_size: int = 80  # real samples per step (drifting: n_classes * n_pos positives per step)
    label_drop: float = 0.1  # share of null-class labels, for CFG at sampling
    grid_nfe: int = 10  # Euler steps of the sample grids
    grid_guidance: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.label_drop < 1.0:
            raise ValueError(f"label_drop={self.label_drop}; expected a share in [0, 1)")
        if self.batch_size < 1 or self.grid_nfe < 1:
            raise ValueError(f"batch_size={self.batch_size}, grid_nfe={self.grid_nfe}; expected both >= 1")


def flow_inputs(
    data: Tensor, labels: Tensor, generator: torch.Generator, label_drop: float = 0.0, null_class: int = 10
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x_t [B, C, H, W], t [B], labels [B] with dropped ones set to ``null_class``, target velocity
    data - noise [B, C, H, W]) for data [B, C, H, W]; all randomness from ``generator``."""
    batch = data.shape[0]
    noise = torch.randn(data.shape, generator=generator).to(data.device)
    t = torch.rand(batch, generator=generator).to(data.device)  # [B]
    drop = (torch.rand(batch, generator=generator) < label_drop).to(data.device)
    labels = labels.masked_fill(drop, null_class)
    t_ = t.view(-1, 1, 1, 1)
    x_t = (1.0 - t_) * noise + t_ * data  # [B, C, H, W]
    return x_t, t, labels, data - noise


def flow_loss(
    model: nn.Module,
    data: Tensor,
    labels: Tensor,
    generator: torch.Generator,
    label_drop: float = 0.0,
    null_class: int = 10,
) -> Tensor:
    """Rectified-flow loss: mean ||v(x_t, t, y) - (data - noise)||^2 for data [B, C, H, W], labels [B].

    ``model``: a FlowDiT or a wrapper called as model(x, t, labels). All randomness from ``generator``.
    """
    x_t, t, labels, target = flow_inputs(data, labels, generator, label_drop, null_class)
    return F.mse_loss(model(x_t, t, labels).float(), target.float())


class FlowObjective(GeneratorObjective):
    """FlowDiT on the train split (pixels or cached latents), batches drawn with replacement."""

    name = "flow"
    generator_seed_offset = 1

    def __init__(self, config: FlowTrainConfig, dist_info, device):
        super().__init__(config, dist_info, device)
        self.rows = split_groups(config.batch_size, self.dist, config.grad_accum, "batch_size")
        self._load_data()  # [N, C, H, W], [N]
        self.model = FlowDiT(config.model).to(self.device)

    @property
    def images_per_step(self) -> int:
        return self.config.batch_size

    def sample_batch(self, generator: torch.Generator) -> tuple[Tensor, ...]:
        cfg = self.config
        index = torch.randint(self.samples.shape[0], (cfg.batch_size,), generator=generator)
        data, labels = self.samples[index].to(self.device), self.labels[index].to(self.device)
        return flow_inputs(data, labels, generator, cfg.label_drop, self.model.null_class)

    def micro_batches(self, batch: tuple[Tensor, ...]) -> list[tuple[tuple[Tensor, ...], slice]]:
        return [(batch, rows) for rows in self.rows]

    def compute_loss(self, micro, generator) -> tuple[Tensor, dict[str, float]]:
        (x_t, t, labels, target), rows = micro
        # mean over this micro-batch x its share of the global batch x world size (DDP averages over ranks):
        # the micro-batch losses of all ranks add up to the global batch's mean
        share = (rows.stop - rows.start) / self.config.batch_size * self.dist.world_size
        with autocast(self.device):
            velocity = self.wrapped(x_t[rows], t[rows], labels[rows])  # [b, C, H, W]
        return F.mse_loss(velocity.float(), target[rows].float()) * share, {}

    @torch.no_grad()
    def sample_grid(self, model, per_class: int) -> Tensor:
        """Samples [10 * per_class, C, H, W] in pixels, class-major, fixed seed, grid_nfe Euler steps."""
        cfg = self.config
        labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class).to(self.device)
        noise = torch.randn(
            len(labels), cfg.model.in_channels, cfg.model.input_size, cfg.model.input_size,
            generator=torch.Generator().manual_seed(GRID_SEED),
        ).to(self.device)
        return self.decode(euler_sample(model, noise, labels, cfg.grid_nfe, cfg.grid_guidance))

    def model_metadata(self) -> dict:
        return {"model_kind": MODEL_KIND, **super().model_metadata(), "label_drop": self.config.label_drop}

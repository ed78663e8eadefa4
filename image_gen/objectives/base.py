"""What an objective plugs into the image trainer (image_gen.training.trainer.Trainer).

The Trainer owns the loop: run folder, AdamW with warm-up and schedule, EMA, gradient clipping and
accumulation, DDP/FSDP gradient sync, metrics, checkpoints and exact resume. An objective owns what differs:
its data, its network, how one step's randomness is drawn and how a micro-batch becomes a loss.

One step, as the Trainer runs it on every rank:

    batch = objective.sample_batch(generator)             # the global step's randomness, same on all ranks
    for micro in objective.micro_batches(batch):           # this rank's share, split for accumulation
        loss, metrics = objective.compute_loss(micro, generator)
        loss.backward()                                    # ranks sync gradients in the last micro-batch
    ... clip, AdamW, EMA ...
    objective.after_step()                                 # e.g. push fresh real samples into a queue

``loss`` is scaled so that the micro-batch losses of a step add up to the step's loss, and the gradient that
DDP averages over ranks is the global one; the logged loss is their sum, averaged over ranks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from image_gen.distributed import DistInfo, wrap_ddp, wrap_fsdp


class Objective:
    """Base of the objectives; subclasses set ``self.model`` in ``__init__`` and implement the step."""

    name: ClassVar[str] = ""
    # Seed offset of the step generator: image-gen-train and the flow trainer drew their steps from seed + 1,
    # the encoder trainers from seed; kept so that a seed gives the same run as before the loops merged.
    generator_seed_offset: ClassVar[int] = 0
    # Objectives whose step cannot be split over ranks say so here (the Trainer refuses torchrun for them).
    distributed: ClassVar[bool] = True

    def __init__(self, config, dist_info: DistInfo, device: torch.device):
        """Build data and network. The Trainer calls this with the global CPU RNG seeded from config.seed on a
        fork, so initial weights depend on the seed alone; draw nothing else from the global RNG."""
        self.config, self.dist, self.device = config, dist_info, device
        self.model: nn.Module  # the trained network: optimiser parameters, EMA, model.* in checkpoints
        self.wrapped: nn.Module | None = None  # the network behind DDP/FSDP, set by wrap()

    @property
    def network(self) -> nn.Module:
        """The module whose forward a micro-batch runs through (wrapped for DDP/FSDP); the model itself unless
        an objective folds its loss into a module (the MAE)."""
        return self.model

    def wrap(self, fsdp: bool) -> None:
        """DDP (or FSDP2 over the DiT blocks) around :attr:`network`; identity in one process. The Trainer
        calls it after taking the EMA copy, so the EMA stays a full, unsharded copy."""
        self.wrapped = wrap_fsdp(self.network, self.dist) if fsdp else wrap_ddp(self.network, self.dist)

    def max_steps(self) -> int:
        """The step budget (objectives counting epochs derive it from their data)."""
        return int(self.config.max_steps)

    @property
    def images_per_step(self) -> int:
        """Images one step trains on (generated ones for the drifting objective), for throughput rows."""
        raise NotImplementedError

    def sample_batch(self, generator: torch.Generator) -> Any:
        """Everything random about one global step, drawn from ``generator`` identically on every rank."""
        raise NotImplementedError

    def micro_batches(self, batch: Any) -> list[Any]:
        """This rank's ``grad_accum`` micro-batches of ``batch``."""
        raise NotImplementedError

    def compute_loss(self, micro: Any, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        """(loss to backpropagate, float diagnostics without a ``train/`` prefix) of one micro-batch."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Work after the optimiser step (the drifting objective refreshes its queue)."""

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The objective's own resume state: (tensors with a name prefix of their own, JSON scalars)."""
        return {}, {}

    def load_state_dict(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (``tensors`` holds the whole train-state file)."""

    def sample_grid(self, model: nn.Module, per_class: int) -> Tensor | None:
        """Sample grid [K * per_class, C, H, W] in pixels from ``model`` (the EMA), or None (no samples)."""
        return None

    def export_checkpoint(self, run_dir: Path, weights: dict[str, Tensor], step: int) -> None:
        """Rank 0, at every checkpoint: write the objective's weight file from the full ``model.*`` and
        ``ema.*`` tensors (the generators' model.safetensors); nothing by default."""

    def finish(self, run_dir: Path, last_metrics: dict[str, float], train_seconds: float) -> dict[str, float]:
        """Every rank, after the last step: final evaluation and export (the encoders write their files
        here); returns a row the Trainer logs at the last step."""
        return {}

"""Settings every image objective shares: run folder, budget, AdamW, schedule, EMA, logging, distribution.

Each objective's config subclasses :class:`ImageTrainConfig` and adds only its own fields; where an
objective's old trainer used other defaults for a shared field (the MAE's cosine schedule, no EMA for the
encoders), the subclass restates that default so runs and seeds reproduce. Field names follow the policy
trainer (drifting_policy.training.trainer.TrainConfig): max_steps, lr, warmup_steps, lr_schedule, grad_clip,
ema_max_decay, seed, device, num_threads, log_every, checkpoint_every, resume, progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from image_gen.data.fmnist import DEFAULT_ROOT

LR_SCHEDULES = ("constant", "cosine")


@dataclass
class ImageTrainConfig:
    objective: str = ""  # set by each subclass; hydra configs pick it with `defaults: [objective: <name>]`
    run_name: str = "imagegen"
    out_dir: str = "runs"
    seed: int = 0
    device: str = "cpu"  # "cuda" for GPUs (cuda:LOCAL_RANK under torchrun); "auto" picks cuda when present
    num_threads: int | None = 1  # torch.set_num_threads in the entry point; None: leave torch's default
    data_root: str = DEFAULT_ROOT
    limit_per_class: int | None = None  # None: every train image
    max_steps: int | None = 500  # optimiser steps (None only where the objective counts epochs)
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.01
    warmup_steps: int | None = 100  # linear warm-up; None: min(100, max_steps // 10)
    lr_schedule: str = "constant"  # after warm-up: "constant" (the paper's) or "cosine" to 0 at max_steps
    grad_clip: float | None = 2.0  # max gradient norm; None: no clipping (the norm is still logged)
    ema: bool = True
    ema_max_decay: float = 0.995  # EMA decay min(ema_max_decay, step / (9 + step)) of the `step`-th update
    log_every: int = 25
    sample_every: int = 250  # sample grids (generator objectives)
    checkpoint_every: int = 250  # train_state.safetensors (+ the objective's export); also at the end
    # also keep the objective's export (model.safetensors) of every keep_every-th step in
    # checkpoints/step_<N>/, with a metrics row there (train/cpu_minutes): time-to-score curves; None: no
    keep_every: int | None = None
    resume: bool = True  # continue from run_dir/train_state.safetensors when it exists
    progress: bool = True
    grad_accum: int = 1  # micro-batches per rank
    fsdp: bool = False  # FSDP2 shards weights/grads/AdamW over the ranks instead of DDP (DiT objectives)

    # Objectives that count their budget in epochs (the evaluator) set this and leave max_steps None.
    STEPS_FROM_EPOCHS: ClassVar[bool] = False

    def __post_init__(self):
        own = type(self).__dataclass_fields__["objective"].default
        if self.objective != own:
            raise ValueError(f"objective={self.objective!r} in a {type(self).__name__}; expected {own!r}: "
                             "build that objective's config (image_gen.objectives.config_class(name))")
        self.betas = tuple(float(b) for b in self.betas)
        self._check_budget()
        self._check_optimiser()
        for name in ("log_every", "sample_every", "checkpoint_every", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; expected >= 1: set {name}=<a count>")
        if self.keep_every is not None and self.keep_every < 1:
            raise ValueError(f"keep_every={self.keep_every}; expected >= 1, or null to keep no step's export")

    def _check_budget(self) -> None:
        if self.STEPS_FROM_EPOCHS and self.max_steps is not None:
            raise ValueError(f"max_steps={self.max_steps} for objective={self.objective!r}, whose budget is "
                             "`epochs`; set max_steps=null and choose epochs instead")
        if not self.STEPS_FROM_EPOCHS and (self.max_steps is None or self.max_steps < 1):
            raise ValueError(f"max_steps={self.max_steps}; expected >= 1: set max_steps=<optimiser steps>")

    def _check_optimiser(self) -> None:
        if self.lr <= 0 or len(self.betas) != 2:
            raise ValueError(f"lr={self.lr}, betas={list(self.betas)}; expected lr > 0 and two betas")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup_steps={self.warmup_steps}; expected >= 0 (or null for min(100, "
                             "max_steps // 10))")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={self.lr_schedule!r}; expected one of {list(LR_SCHEDULES)}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip={self.grad_clip}; expected > 0, or null for no clipping")
        if not 0.0 <= self.ema_max_decay < 1.0:
            raise ValueError(f"ema_max_decay={self.ema_max_decay}; expected a decay in [0, 1)")
        if self.fsdp and not self.ema:
            raise ValueError("fsdp=true with ema=false: rank 0 samples grids from the EMA's full copy while "
                             "the model is sharded; set ema=true or fsdp=false")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.run_name

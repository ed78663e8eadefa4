"""Diffusion Policy baseline: epsilon-prediction DDPM over normalised action chunks, DDPM or DDIM sampling.

Schedulers are diffusers' ``DDPMScheduler`` (training and DDPM sampling) and a ``DDIMScheduler`` built from
the same config (same betas), so one set of weights serves DDPM-100, DDIM-10 and DDIM-16. They hold no
parameters: switching sampler (``set_sampler``) leaves the state_dict unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from torch import Tensor

from drifting_policy.policy.base import BasePolicy, PolicyConfig, config_error

SAMPLERS = ("ddpm", "ddim")
PREDICTION_TYPES = ("epsilon", "sample")


@dataclasses.dataclass
class DiffusionConfig(PolicyConfig):
    """Diffusion head; defaults are Diffusion Policy's (100 steps, squaredcos_cap_v2, clipped, epsilon)."""

    num_train_timesteps: int = 100
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"  # "epsilon" | "sample"
    clip_sample: bool = True
    sampler: str = "ddpm"  # "ddpm" | "ddim"
    num_inference_steps: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sampler not in SAMPLERS:
            raise config_error("sampler", f"one of {SAMPLERS}", self.sampler, "use 'ddpm' or 'ddim'")
        if self.prediction_type not in PREDICTION_TYPES:
            raise config_error("prediction_type", f"one of {PREDICTION_TYPES}", self.prediction_type,
                               "use 'epsilon'")
        if self.num_train_timesteps < 1:
            raise config_error("num_train_timesteps", ">= 1", self.num_train_timesteps, "use 100")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise config_error("num_inference_steps", f"in [1, num_train_timesteps="
                               f"{self.num_train_timesteps}]", self.num_inference_steps,
                               "e.g. 100 for DDPM, 10 or 16 for DDIM")


class DiffusionPolicy(BasePolicy):
    """Denoiser eps(noisy chunk, t, obs); sampling calls the backbone num_inference_steps times."""

    name = "diffusion"
    config_class = DiffusionConfig
    uses_timestep = True
    zero_init_output = True  # starts predicting eps = 0 (its mean): loss starts at 1, no random offsets

    def __init__(self, config: DiffusionConfig, shape_meta: Mapping):
        super().__init__(config, shape_meta)
        self.train_scheduler = DDPMScheduler(
            num_train_timesteps=config.num_train_timesteps, beta_start=config.beta_start,
            beta_end=config.beta_end, beta_schedule=config.beta_schedule, variance_type="fixed_small",
            clip_sample=config.clip_sample, prediction_type=config.prediction_type)
        self.set_sampler(config.sampler, config.num_inference_steps)

    def set_sampler(self, sampler: str, num_inference_steps: int) -> None:
        """Switch to DDPM or DDIM with ``num_inference_steps`` (same weights; updates ``self.config``)."""
        self.config = dataclasses.replace(self.config, sampler=sampler,
                                          num_inference_steps=num_inference_steps)  # validates both
        # DDIM uses the same betas; its step defaults to eta = 0, a deterministic sampler
        scheduler_class = DDPMScheduler if sampler == "ddpm" else DDIMScheduler
        self.sample_scheduler = scheduler_class.from_config(self.train_scheduler.config)

    def compute_loss(self, batch: Mapping[str, Any], generator: torch.Generator | None = None
                     ) -> tuple[Tensor, dict[str, Tensor]]:
        cond = self.encode_obs(batch["obs"], generator)  # [B, E]
        action = self.normalized_action(batch, cond.shape[0])  # [B, T, A]
        noise = self.sample_noise(tuple(action.shape), generator)  # [B, T, A]
        steps_device = generator.device if generator is not None else self.device
        timesteps = torch.randint(0, self.config.num_train_timesteps, (action.shape[0],), generator=generator,
                                  device=steps_device).to(self.device)  # [B]
        noisy = self.train_scheduler.add_noise(action, noise, timesteps)  # [B, T, A]
        prediction = self.backbone(noisy, timesteps, cond)
        target = noise if self.config.prediction_type == "epsilon" else action
        loss = F.mse_loss(prediction, target)
        return loss, {"loss": loss.detach()}

    @torch.no_grad()
    def predict_action(self, obs: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        cond = self.encode_obs(obs)  # [B, E], encoded once for all denoising steps
        scheduler = self.sample_scheduler
        scheduler.set_timesteps(self.config.num_inference_steps)
        sample = self.sample_noise((cond.shape[0], *self.chunk_shape), generator)  # [B, T, A]
        for t in scheduler.timesteps:
            prediction = self.backbone(sample, t.to(self.device), cond)
            sample = scheduler.step(prediction, t, sample, generator=generator).prev_sample
        return self.unnormalize_action(sample)  # [B, T, A]

"""Regression baseline: deterministic MSE behaviour cloning of the normalised action chunk.

Same obs encoder and backbone as the generative heads; the backbone's sample input is all zeros and it
gets no timestep, so it is a plain function obs -> chunk. It answers "is it the one-step generator or just
fewer steps?": a regression policy also takes one network evaluation, but averages modes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from drifting_policy.policy.base import BasePolicy, PolicyConfig


@dataclasses.dataclass
class RegressionConfig(PolicyConfig):
    """Regression head: no extra fields besides the clip of the output to the data range."""

    clip_sample: bool = True  # clip predicted chunks to [-1, 1] before unnormalising, as the other heads


class RegressionPolicy(BasePolicy):
    """chunk = backbone(0, obs)."""

    name = "regression"
    config_class = RegressionConfig
    uses_timestep = False
    zero_init_output = True  # starts at the centre of the normalised range instead of a random offset

    def regress(self, cond: Tensor) -> Tensor:
        """Conditioning [B, E] -> normalised chunks [B, T, A]."""
        zeros = torch.zeros((cond.shape[0], *self.chunk_shape), device=cond.device, dtype=cond.dtype)
        return self.backbone(zeros, None, cond)

    def compute_loss(self, batch: Mapping[str, Any], generator: torch.Generator | None = None
                     ) -> tuple[Tensor, dict[str, Tensor]]:
        cond = self.encode_obs(batch["obs"], generator)  # [B, E]
        action = self.normalized_action(batch, cond.shape[0])  # [B, T, A]
        loss = F.mse_loss(self.regress(cond), action)
        return loss, {"loss": loss.detach()}

    @torch.no_grad()
    def predict_action(self, obs: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        return self.unnormalize_action(self.regress(self.encode_obs(obs)))  # [B, T, A]; generator unused

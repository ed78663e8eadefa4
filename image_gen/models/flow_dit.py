"""Velocity network of the rectified-flow baseline: the generator's DiT plus a time embedding and null class.

Rectified flow (Liu et al. 2022; Lipman et al. 2022): x_t = (1 - t) * noise + t * data, t ~ U[0, 1]; the
network predicts the velocity v = data - noise (loss: image_gen.objectives.flow; Euler sampling:
image_gen.sampling). CFG by label dropout: a share ``label_drop`` of training labels is replaced by the null
class ``num_classes``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from image_gen.models.dit import DiT, DiTConfig, ScalarEmbedder

MODEL_KIND = "flow"  # checkpoint metadata "model_kind"; drifting checkpoints have none
TIME_SCALE = 1000.0  # t in [0, 1] -> DiT's timestep range [0, 1000] before the sinusoidal embedding


class TimeEmbedder(ScalarEmbedder):
    """t in [0, 1] -> [B, hidden]; ScalarEmbedder maps (v - 1) * 100, so v = 1 + t * 10 gives t * 1000."""

    def forward(self, t: Tensor) -> Tensor:
        return super().forward(1.0 + t * TIME_SCALE / 100.0)  # [B, hidden]


class FlowDiT(DiT):
    """Velocity network v(x_t, t, class): the generator's DiT plus a time embedding and a null class.

    The CFG-scale input alpha of the drifting DiT stays at 1 (unused); style tokens are not used (the flow's
    randomness is the initial noise).
    """

    def __init__(self, config: DiTConfig):
        super().__init__(config)
        hidden = config.hidden_size
        self.null_class = config.num_classes
        self.class_embed = nn.Embedding(config.num_classes + 1, hidden)  # + null class for label dropout
        self.time_embed = TimeEmbedder(hidden)
        nn.init.normal_(self.class_embed.weight, std=1.0)  # same reason as DiT._init_weights
        for module in self.time_embed.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def velocity(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        """x [B, C, H, W] at times t [B] in [0, 1], labels [B] (null_class: unconditional) -> v, like x."""
        cfg = self.config
        alpha = torch.ones_like(t)
        c = self.condition(labels, alpha, None) + self.time_embed(t)  # [B, hidden]
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)  # [B, L, hidden]
        prefix = self.in_context + self.in_context_proj(c).unsqueeze(1)  # [B, n_ctx, hidden]
        tokens = torch.cat([prefix.to(tokens.dtype), tokens], dim=1)  # [B, T, hidden]
        for block in self.blocks:
            tokens = block(tokens, c, self.rope_cos, self.rope_sin)  # [B, T, hidden]
        out = self.final_layer(tokens[:, cfg.num_in_context :], c)  # [B, L, p*p*C]
        return self.unpatchify(out)  # [B, C, H, W]

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        return self.velocity(x, t, labels)

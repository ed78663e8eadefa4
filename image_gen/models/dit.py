"""One-step DiT generator f(noise, class, alpha, style) -> image (Drifting Models, Sec. 4, Table 8).

A DiT with the paper's modernisations: SwiGLU MLP, 2-D rotary position embedding (RoPE), RMSNorm, QK-norm,
adaLN-zero conditioning, in-context conditioning tokens prepended to the patch tokens, and random "style"
tokens: ``num_style_tokens`` indices drawn per sample into a learned codebook, whose embeddings are summed
into the conditioning vector (an extra source of randomness beside the noise image).

Conditioning vector c = class embedding + alpha embedding + sum of style embeddings, where alpha >= 1 is the
CFG scale the model is trained for (sampled per class during training, chosen at inference; still 1 NFE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Size variants: hidden/depth/heads of paper Table 8 (B, L) plus small ones for CPUs; patch size in the name.
DIT_MODELS: dict[str, dict[str, int]] = {
    "DiT-T/4": dict(hidden_size=64, depth=4, num_heads=4, patch_size=4),
    "DiT-T/2": dict(hidden_size=64, depth=4, num_heads=4, patch_size=2),
    "DiT-S/4": dict(hidden_size=256, depth=6, num_heads=4, patch_size=4),
    "DiT-S/2": dict(hidden_size=384, depth=12, num_heads=6, patch_size=2),
    "DiT-B/2": dict(hidden_size=768, depth=12, num_heads=12, patch_size=2),
    "DiT-L/2": dict(hidden_size=1024, depth=24, num_heads=16, patch_size=2),
    "DiT-B/16": dict(hidden_size=768, depth=12, num_heads=12, patch_size=16),
    "DiT-L/16": dict(hidden_size=1024, depth=24, num_heads=16, patch_size=16),
}


@dataclass
class DiTConfig:
    """Generator architecture. ``size`` picks hidden/depth/heads/patch from :data:`DIT_MODELS`."""

    size: str = "DiT-T/4"
    input_size: int = 32  # H = W of the generated image or latent
    in_channels: int = 1  # 1 for Fashion-MNIST pixels, the VAE's latent channels for latent space
    num_classes: int = 10
    mlp_ratio: float = 4.0
    num_in_context: int = 4  # paper: 16
    num_style_tokens: int = 32
    style_codebook_size: int = 64
    rope_base: float = 100.0

    def __post_init__(self):
        if self.size not in DIT_MODELS:
            raise ValueError(f"size={self.size!r}; expected one of {sorted(DIT_MODELS)}")
        if self.input_size % self.patch_size:
            raise ValueError(
                f"input_size={self.input_size} is not divisible by patch_size={self.patch_size} "
                f"of {self.size}; pick another size"
            )
        if self.head_dim % 4:
            raise ValueError(f"head dim {self.head_dim} of {self.size} must be divisible by 4 for 2-D RoPE")
        if self.num_style_tokens < 0 or self.style_codebook_size < 1 or self.num_in_context < 0:
            raise ValueError(
                "num_style_tokens and num_in_context must be >= 0, style_codebook_size >= 1; got "
                f"{self.num_style_tokens}, {self.num_in_context}, {self.style_codebook_size}"
            )

    hidden_size = property(lambda self: DIT_MODELS[self.size]["hidden_size"])
    depth = property(lambda self: DIT_MODELS[self.size]["depth"])
    num_heads = property(lambda self: DIT_MODELS[self.size]["num_heads"])
    patch_size = property(lambda self: DIT_MODELS[self.size]["patch_size"])
    head_dim = property(lambda self: self.hidden_size // self.num_heads)
    grid_size = property(lambda self: self.input_size // self.patch_size)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def sinusoidal_embedding(values: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """[B] floats -> [B, dim] sin/cos features (DiT's timestep embedding)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, device=values.device, dtype=torch.float32) / half
    )
    args = values.float()[:, None] * freqs[None]  # [B, half]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ScalarEmbedder(nn.Module):
    """Embeds the CFG scale alpha; (alpha - 1) * 100 spreads the useful range [1, 4] over the frequencies."""

    def __init__(self, hidden_size: int, frequency_size: int = 256):
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
        )

    def forward(self, alpha: Tensor) -> Tensor:
        return self.mlp(sinusoidal_embedding((alpha - 1.0) * 100.0, self.frequency_size))  # [B, hidden]


def rope_tables(grid_size: int, head_dim: int, num_prefix: int, base: float) -> tuple[Tensor, Tensor]:
    """cos/sin [T, head_dim/2] for 2-D RoPE: half the pairs rotate with the row, half with the column.

    The ``num_prefix`` in-context tokens get angle 0 (no rotation): they have no position.
    """
    quarter = head_dim // 4
    freqs = base ** (-torch.arange(quarter, dtype=torch.float32) / quarter)  # [hd/4]
    rows, cols = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    angles = torch.cat([rows.reshape(-1, 1) * freqs, cols.reshape(-1, 1) * freqs], dim=-1)  # [L, hd/2]
    angles = torch.cat([torch.zeros(num_prefix, head_dim // 2), angles])  # [T, hd/2]
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x [B, heads, T, hd] rotated pairwise (x0, x1) by the angles of its token."""
    x0, x1 = x[..., 0::2], x[..., 1::2]  # [B, h, T, hd/2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.q_norm = nn.RMSNorm(hidden_size // num_heads)  # QK-norm keeps attention logits bounded
        self.k_norm = nn.RMSNorm(hidden_size // num_heads)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        batch, tokens, hidden = x.shape
        qkv = (
            self.qkv(x).reshape(batch, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        )  # [3, B, h, T, hd]
        q, k = apply_rope(self.q_norm(qkv[0]), cos, sin), apply_rope(self.k_norm(qkv[1]), cos, sin)
        out = F.scaled_dot_product_attention(q, k, qkv[2])  # [B, h, T, hd]
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, hidden))  # [B, T, hidden]


class SwiGLU(nn.Module):
    def __init__(self, hidden_size: int, mlp_ratio: float):
        super().__init__()
        inner = int(2 * mlp_ratio * hidden_size / 3)  # 2/3 keeps the parameter count of a GELU MLP
        self.gate_up = nn.Linear(hidden_size, 2 * inner)
        self.down = nn.Linear(inner, hidden_size)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class DiTBlock(nn.Module):
    """Pre-norm block; adaLN-zero: shift/scale/gate from c, gates start at 0 (block = identity)."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.RMSNorm(hidden_size, elementwise_affine=False)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.RMSNorm(hidden_size, elementwise_affine=False)
        self.mlp = SwiGLU(hidden_size, mlp_ratio)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x: Tensor, c: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + gate_a.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_a, scale_a), cos, sin)
        return x + gate_m.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_m, scale_m))  # [B, T, hidden]


class FinalLayer(nn.Module):
    def __init__(self, hidden_size: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm = nn.RMSNorm(hidden_size, elementwise_affine=False)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))  # [B, L, p*p*C]


class DiT(nn.Module):
    """Generator: noise [B, C, H, W], labels [B], alpha [B] (+ style indices [B, S]) -> [B, C, H, W]."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = cfg = config
        hidden, patch = cfg.hidden_size, cfg.patch_size
        self.patch_embed = nn.Conv2d(cfg.in_channels, hidden, kernel_size=patch, stride=patch)
        self.class_embed = nn.Embedding(cfg.num_classes, hidden)
        self.alpha_embed = ScalarEmbedder(hidden)
        self.style_codebook = nn.Embedding(cfg.style_codebook_size, hidden)
        self.in_context = nn.Parameter(torch.zeros(1, cfg.num_in_context, hidden))
        self.in_context_proj = nn.Linear(hidden, hidden)  # puts c into every in-context token
        self.blocks = nn.ModuleList(DiTBlock(hidden, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.final_layer = FinalLayer(hidden, patch, cfg.in_channels)
        cos, sin = rope_tables(cfg.grid_size, cfg.head_dim, cfg.num_in_context, cfg.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        def basic(module):
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

        self.apply(basic)
        weight = self.patch_embed.weight.data
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        # Unit-scale class embeddings (DiT: 0.02): the adaLN weights start at zero, so their gradient is
        # proportional to c; a tiny c made class conditioning a second-order effect that short CPU runs
        # never learned (class accuracy stayed at chance after 200 steps). Style tokens stay a small
        # perturbation: 32 summed tokens of std 0.05 give std ~0.3.
        nn.init.normal_(self.class_embed.weight, std=1.0)
        nn.init.normal_(self.style_codebook.weight, std=0.05)
        nn.init.normal_(self.in_context, std=0.02)
        # adaLN-zero: every block starts as the identity, conditioning enters through learned gates.
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        # Not zero (unlike DiT): a constant output makes the feature encoder's GroupNorm divide by ~0 and
        # its gradients explode; a small random projection keeps the samples noise-dependent from step 0.
        nn.init.normal_(self.final_layer.linear.weight, std=0.02)
        nn.init.zeros_(self.final_layer.linear.bias)

    def sample_style(self, batch: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """Random style indices [B, num_style_tokens] into the codebook."""
        cfg = self.config
        return torch.randint(
            cfg.style_codebook_size, (batch, cfg.num_style_tokens), generator=generator, device=device
        )

    def condition(self, labels: Tensor, alpha: Tensor, style: Tensor | None) -> Tensor:
        c = self.class_embed(labels) + self.alpha_embed(alpha)  # [B, hidden]
        if style is not None and style.numel():
            c = c + self.style_codebook(style).sum(dim=1)  # [B, S, hidden] -> [B, hidden]
        return c

    def unpatchify(self, x: Tensor) -> Tensor:
        cfg = self.config
        grid, patch, channels = cfg.grid_size, cfg.patch_size, cfg.in_channels
        x = x.reshape(x.shape[0], grid, grid, patch, patch, channels)
        return torch.einsum("bhwpqc->bchpwq", x).reshape(x.shape[0], channels, grid * patch, grid * patch)

    def forward(self, noise: Tensor, labels: Tensor, alpha: Tensor, style: Tensor | None = None) -> Tensor:
        cfg = self.config
        x = self.patch_embed(noise).flatten(2).transpose(1, 2)  # [B, L, hidden]
        c = self.condition(labels, alpha, style)  # [B, hidden]
        prefix = self.in_context + self.in_context_proj(c).unsqueeze(1)  # [B, n_ctx, hidden]
        x = torch.cat([prefix.to(x.dtype), x], dim=1)  # [B, T = n_ctx + L, hidden]
        for block in self.blocks:
            x = block(x, c, self.rope_cos, self.rope_sin)  # [B, T, hidden]
        x = self.final_layer(x[:, cfg.num_in_context :], c)  # [B, L, p*p*C]
        return self.unpatchify(x)  # [B, C, H, W]

    @torch.no_grad()
    def generate(
        self,
        labels: Tensor,
        alpha: float | Tensor = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """1-NFE sampling: fresh noise and style per label; returns [B, C, H, W] float32."""
        cfg = self.config
        device = labels.device
        noise = torch.randn(len(labels), cfg.in_channels, cfg.input_size, cfg.input_size, generator=generator)
        style = self.sample_style(len(labels), generator)
        alpha = torch.as_tensor(alpha, dtype=torch.float32).expand(len(labels))
        return self(noise.to(device), labels, alpha.to(device), style.to(device)).float()

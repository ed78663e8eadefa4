"""Flow-matching (rectified-flow) baseline on the generator's DiT backbone: the many-NFE comparison point.

Rectified flow (Liu et al. 2022; Lipman et al. 2022): x_t = (1 - t) * noise + t * data, t ~ U[0, 1]; the
network predicts the velocity v = data - noise; sampling integrates dx/dt = v from t = 0 (noise) to t = 1 with
Euler steps, one network call per step. CFG by label dropout: a share ``label_drop`` of training labels is
replaced by the null class ``num_classes``; at sampling a guidance w != 1 mixes v_u + w (v_c - v_u), with
the conditional and unconditional halves batched into the same network call (so NFE = Euler steps either way).

:class:`FlowSampler` exposes the drifting generator's ``generate(labels, alpha, generator)``, so the
evaluation code samples both kinds identically; there ``alpha`` is the guidance scale w (1 = no guidance).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
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
    batch = data.shape[0]
    noise = torch.randn(data.shape, generator=generator).to(data.device)
    t = torch.rand(batch, generator=generator).to(data.device)  # [B]
    drop = (torch.rand(batch, generator=generator) < label_drop).to(data.device)
    labels = labels.masked_fill(drop, null_class)
    t_ = t.view(-1, 1, 1, 1)
    x_t = (1.0 - t_) * noise + t_ * data  # [B, C, H, W]
    return F.mse_loss(model(x_t, t, labels).float(), (data - noise).float())


@torch.no_grad()
def euler_sample(model: FlowDiT, noise: Tensor, labels: Tensor, nfe: int, guidance: float = 1.0) -> Tensor:
    """Integrate from noise [B, C, H, W] (t = 0) to t = 1 in ``nfe`` equal Euler steps; one network call each.

    guidance w != 1: CFG, v = v_u + w (v_c - v_u), conditional and null-class rows in the same call.
    """
    if nfe < 1:
        raise ValueError(f"nfe={nfe}; expected >= 1 Euler steps")
    x, batch, dt = noise, noise.shape[0], 1.0 / nfe
    guided = guidance != 1.0
    if guided:
        labels = torch.cat([labels, torch.full_like(labels, model.null_class)])  # [2B]
    for step in range(nfe):
        t = torch.full((labels.shape[0],), step * dt, device=x.device)
        x_in = torch.cat([x, x]) if guided else x
        v = model(x_in, t, labels).float()  # [B or 2B, C, H, W]
        if guided:
            v = v[batch:] + guidance * (v[:batch] - v[batch:])
        x = x + dt * v
    return x  # [B, C, H, W]


class FlowSampler(nn.Module):
    """A FlowDiT with a fixed step count behind the drifting DiT's ``generate`` signature.

    ``seconds`` accumulates the wall time spent in ``generate`` (network only), for per-NFE timings.
    """

    def __init__(self, model: FlowDiT, nfe: int):
        super().__init__()
        if nfe < 1:
            raise ValueError(f"nfe={nfe}; expected >= 1 Euler steps")
        self.model, self.nfe, self.seconds = model, nfe, 0.0
        self.config = model.config

    @torch.no_grad()
    def generate(
        self, labels: Tensor, alpha: float | Tensor = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """[B] labels -> samples [B, C, H, W] float32; alpha = CFG guidance scale (1 = none)."""
        cfg = self.config
        start = time.perf_counter()
        noise = torch.randn(len(labels), cfg.in_channels, cfg.input_size, cfg.input_size, generator=generator)
        out = euler_sample(self.model, noise.to(labels.device), labels, self.nfe, float(alpha))
        self.seconds += time.perf_counter() - start
        return out

    @torch.no_grad()
    def from_noise(self, noise: Tensor, style: Tensor | None, labels: Tensor, alpha: float) -> Tensor:
        """Samples from given noise [B, C, H, W] (style unused: the flow has no style tokens)."""
        return euler_sample(self.model, noise, labels, self.nfe, float(alpha))


class TimedGenerator(nn.Module):
    """The drifting DiT behind the same timing counter as :class:`FlowSampler` (1 NFE)."""

    def __init__(self, model: DiT):
        super().__init__()
        self.model, self.nfe, self.seconds = model, 1, 0.0
        self.config = model.config

    @torch.no_grad()
    def generate(self, labels: Tensor, alpha: float | Tensor = 1.0, generator=None) -> Tensor:
        start = time.perf_counter()
        out = self.model.generate(labels, alpha, generator)
        self.seconds += time.perf_counter() - start
        return out

    @torch.no_grad()
    def from_noise(self, noise: Tensor, style: Tensor | None, labels: Tensor, alpha: float) -> Tensor:
        """Samples from given noise [B, C, H, W] and style indices [B, S]."""
        alpha_t = torch.full((len(labels),), float(alpha), device=noise.device)
        return self.model(noise, labels, alpha_t, style).float()


def load_flow(
    path: str | Path, device: torch.device | str = "cpu", use_ema: bool = True
) -> tuple[FlowDiT, dict]:
    """FlowDiT from an image-gen-train-flow model.safetensors; returns (model in eval mode, metadata)."""
    from image_gen.utils import load_weights, with_prefix

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"flow weights {path} not found; train with `image-gen-train-flow` first")
    weights, metadata = load_weights(path)
    if metadata.get("model_kind") != MODEL_KIND:
        raise ValueError(f"{path} is not a flow checkpoint (model_kind={metadata.get('model_kind')!r})")
    model = FlowDiT(DiTConfig(**metadata["dit_config"]))
    model.load_state_dict(with_prefix(weights, "ema." if use_ema else "model."))
    return model.to(device).eval(), metadata


def load_any_generator(
    path: str | Path, device: torch.device | str = "cpu", nfe: int | None = None
) -> tuple[nn.Module, dict]:
    """Drifting or flow checkpoint -> (object with ``generate(labels, alpha, generator)``, metadata).

    nfe: Euler steps of a flow model (None: 1); a drifting generator is always 1 NFE and rejects nfe > 1.
    The loader of ``image-gen-eval`` and ``image-gen-sample``; both expose ``nfe`` and ``seconds`` (timings).
    """
    from image_gen.utils import load_metadata

    metadata = load_metadata(Path(path)) if Path(path).is_file() else {}  # the kind, without the tensors
    if metadata.get("model_kind") == MODEL_KIND:
        model, metadata = load_flow(path, device)
        return FlowSampler(model, nfe or 1), metadata
    if nfe not in (None, 1):
        raise ValueError(f"nfe={nfe} for the one-step drifting generator {path}; it samples in 1 NFE")
    from image_gen.train import load_generator

    model, metadata = load_generator(path, device)
    return TimedGenerator(model), metadata


def load_sampler_and_decoder(
    path: str | Path, device: torch.device | str = "cpu", nfe: int | None = None
) -> tuple[nn.Module, nn.Module | None, dict]:
    """:func:`load_any_generator` plus the checkpoint's VAE when it generates latents (None in pixel space):
    what ``image-gen-eval`` and ``image-gen-sample`` need to turn noise into pixels."""
    sampler, metadata = load_any_generator(path, device, nfe)
    vae = None
    if metadata.get("space") == "latent":
        from image_gen.models.vae import load_vae

        vae = load_vae(metadata["vae_path"], device)
    return sampler, vae, metadata

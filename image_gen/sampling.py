"""Generators loaded from their run files, behind one sampling interface, for image-gen-eval and -sample.

A drifting checkpoint (image-gen-train) samples in one network call; a flow checkpoint (objective=flow)
integrates dx/dt = v from t = 0 (noise) to t = 1 with ``nfe`` Euler steps, one network call per step. CFG of
the flow: a guidance w != 1 mixes v_u + w (v_c - v_u), the conditional and null-class halves batched into the
same network call (so NFE = Euler steps either way). :class:`FlowSampler` and :class:`TimedGenerator` expose
``generate(labels, alpha, generator)`` (for the flow, ``alpha`` is the guidance scale w, 1 = none) and
``from_noise``, and time the network (``seconds``, for per-NFE timings).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import Tensor, nn

from drifting_policy.common.io import with_prefix
from image_gen.models.dit import DiT, DiTConfig
from image_gen.models.flow_dit import MODEL_KIND, FlowDiT
from image_gen.weight_files import build_config, check_kind, load_into, read_weights

GENERATOR_HINT = "pass the model.safetensors of an image-gen-train (or image-gen-train-flow) run"


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


def load_generator(
    path: str | Path,
    device: torch.device | str = "cpu",
    use_ema: bool = True,
) -> tuple[DiT, dict]:
    """Drifting generator from a run's model.safetensors; returns (model in eval mode, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"generator weights {path} not found; train with `image-gen-train` first")
    weights, metadata = read_weights(path, "dit_config", "an image generator", GENERATOR_HINT)
    model = DiT(build_config(DiTConfig, metadata["dit_config"], path, "dit_config"))
    load_into(model, with_prefix(weights, "ema." if use_ema else "model."), path, GENERATOR_HINT)
    return model.to(device).eval(), metadata


def load_flow(
    path: str | Path, device: torch.device | str = "cpu", use_ema: bool = True
) -> tuple[FlowDiT, dict]:
    """FlowDiT from a flow run's model.safetensors; returns (model in eval mode, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"flow weights {path} not found; train with `image-gen-train-flow` first")
    weights, metadata = read_weights(path, "dit_config", "an image generator", GENERATOR_HINT)
    if metadata.get("model_kind") != MODEL_KIND:
        raise ValueError(f"{path} is not a flow checkpoint (model_kind={metadata.get('model_kind')!r})")
    model = FlowDiT(build_config(DiTConfig, metadata["dit_config"], path, "dit_config"))
    load_into(model, with_prefix(weights, "ema." if use_ema else "model."), path, GENERATOR_HINT)
    return model.to(device).eval(), metadata


def generator_metadata(path: str | Path) -> dict:
    """The metadata of a generator's model.safetensors (drifting or flow), without its tensors: the check
    ``image-gen-eval`` and ``-sample`` run before any other work. FileNotFoundError / ValueError (one line
    naming the file and what it is: damaged, a policy checkpoint, another objective's export)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"generator weights {path} not found; train with `image-gen-train` first, "
                                f"then {GENERATOR_HINT}")
    return check_kind(path, "dit_config", "an image generator", GENERATOR_HINT)


def load_any_generator(
    path: str | Path, device: torch.device | str = "cpu", nfe: int | None = None
) -> tuple[nn.Module, dict]:
    """Drifting or flow checkpoint -> (object with ``generate(labels, alpha, generator)``, metadata).

    nfe: Euler steps of a flow model (None: 1); a drifting generator is always 1 NFE and rejects nfe > 1.
    The loader of ``image-gen-eval`` and ``image-gen-sample``; both expose ``nfe`` and ``seconds`` (timings).
    """
    metadata = generator_metadata(path)  # the kind, without the tensors
    if metadata.get("model_kind") == MODEL_KIND:
        model, metadata = load_flow(path, device)
        return FlowSampler(model, nfe or 1), metadata
    if nfe not in (None, 1):
        raise ValueError(f"nfe={nfe} for the one-step drifting generator {path}; it samples in 1 NFE")
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

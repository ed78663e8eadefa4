"""The Fashion-MNIST train split as latents of a project VAE, encoded once and cached next to the VAE file.

The generator objectives (drifting, flow) and the latent-MAE pre-training (objective mae, space=latent) read
the same cache for one VAE and image limit, so a flow baseline sees exactly the latents its drifting
counterpart saw, and a latent-MAE is trained on the latents the generator imitates.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor

from drifting_policy.common.io import atomic_write

SPACES = ("pixel", "latent")


def check_space(space: str, vae_path: str | None) -> None:
    """ValueError unless ``space`` is pixel, or latent with a ``vae_path`` (config checks of every objective
    that trains on pixels or latents)."""
    if space not in SPACES:
        raise ValueError(f"space={space!r}; expected one of {SPACES}")
    if space == "latent" and not vae_path:
        raise ValueError("space='latent' needs vae_path=<vae.safetensors>; train one with "
                         "image-gen-train-vae")


def latent_cache_path(vae_path: str | Path, limit_per_class: int | None) -> Path:
    """Where the generator and flow trainers cache the train split's latents for one VAE and image limit."""
    suffix = f"_limit{limit_per_class}" if limit_per_class else ""
    return Path(vae_path).with_name(f"latents_train{suffix}.pt")


def cache_latents(vae, images: Tensor, path: str | Path, batch_size: int = 512) -> Tensor:
    """Encode ``images`` [N, C, H, W] once with ``vae.encode_mean`` and cache the result at ``path`` (.pt).

    A later call with an existing file loads it instead; the file records N and a hash of the VAE's
    weights, so a cache made by another (e.g. retrained) VAE is caught. Returns float32 [N, c, h, w].
    """
    path = Path(path)
    vae_hash = weights_hash(vae)
    if path.is_file():
        cached = torch.load(path, map_location="cpu")
        if not isinstance(cached, dict) or cached.get("vae_hash") != vae_hash:
            raise ValueError(f"latent cache {path} was made by another VAE (or an older format); delete "
                             "the file to rebuild it with this one")
        if cached["latents"].shape[0] != images.shape[0]:
            raise ValueError(
                f"latent cache {path} holds {cached['latents'].shape[0]} latents but {images.shape[0]} "
                "images were given; delete the file to rebuild it"
            )
        return cached["latents"]
    with torch.no_grad():
        chunks = [vae.encode_mean(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    latents = torch.cat(chunks).float()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: torch.save({"vae_hash": vae_hash, "latents": latents}, tmp))
    return latents


def weights_hash(model: torch.nn.Module) -> str:
    """A short digest of a module's parameters and buffers (identifies the VAE that made a cache or whose
    latents a latent-MAE was trained on)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def train_latents(vae, images: Tensor, vae_path: str | Path, limit_per_class: int | None, dist_info,
                  device: torch.device) -> Tensor:
    """Cached latents [N, c, h, w] (CPU) of the train images [N, C, H, W]; under torchrun rank 0 writes the
    cache while the other ranks wait, then read it."""
    cache = latent_cache_path(vae_path, limit_per_class)
    if not dist_info.is_main:
        dist_info.barrier()
    latents = cache_latents(vae, images.to(device), cache).cpu()
    if dist_info.is_main:
        dist_info.barrier()
    return latents

"""ImageNet (ILSVRC-2012 train) for the paper's recipes: an ImageFolder reader and a one-off latent cache.

Nothing here downloads anything: the images are a local ``train/<wnid>/*.JPEG`` tree and the SD-VAE weights
a local diffusers folder (``AutoencoderKL.from_pretrained(path)``, e.g. a saved sd-vae-ft-mse).

Pixels: ADM-style centre crop (box-downsample while the short side is >= 2x the target, bicubic resize of the
short side to ``image_size``, centre crop), optional horizontal flip, scaled to [-1, 1]. The pixel-space
generator patchifies these 256x256x3 images 16x16 (DiT-B/16, L/16).

Latent cache: each image is encoded once (no flip) and, with ``flips=True``, once more mirrored; the cache
keeps the posterior moments (mean, logvar) of the *unscaled* SD-VAE latent, so training can draw
``z = (mean + exp(logvar / 2) * eps) * LATENT_SCALE`` afresh each time (or use the mean). Shards are
``shard_00000.safetensors`` (mean/logvar [n, 4, 32, 32], labels [n] int64, and mean_flip/logvar_flip) plus an
``index.json``; a rerun skips shards already written, and ranks split shards by ``shard % world_size``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from drifting_policy.common.io import atomic_write, save_weights

LATENT_SCALE = 0.18215  # SD-VAE latent scale (Rombach et al.; DiT and the drifting code use the same)
IMAGE_SIZE = 256
INDEX_NAME = "index.json"


def center_crop_arr(image: Image.Image, image_size: int = IMAGE_SIZE) -> Image.Image:
    """ADM / DiT centre crop: short side resized to ``image_size`` (box filter while >= 2x), centre crop."""
    while min(*image.size) >= 2 * image_size:
        image = image.resize(tuple(x // 2 for x in image.size), resample=Image.BOX)
    scale = image_size / min(*image.size)
    image = image.resize(tuple(round(x * scale) for x in image.size), resample=Image.BICUBIC)
    arr = np.array(image)
    top, left = (arr.shape[0] - image_size) // 2, (arr.shape[1] - image_size) // 2
    return Image.fromarray(arr[top : top + image_size, left : left + image_size])


def imagenet_transform(image_size: int = IMAGE_SIZE, flip: bool = True):
    """PIL image -> float tensor [3, image_size, image_size] in [-1, 1] (centre crop, random flip)."""
    from torchvision import transforms

    steps = [transforms.Lambda(lambda im: center_crop_arr(im.convert("RGB"), image_size))]
    if flip:
        steps.append(transforms.RandomHorizontalFlip())
    steps += [transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.5] * 3, inplace=True)]
    return transforms.Compose(steps)


def imagenet_folder(root: str | Path, image_size: int = IMAGE_SIZE, flip: bool = True):
    """torchvision ``ImageFolder`` over ``root/<class>/*`` (ILSVRC-2012 train: 1000 wnid folders)."""
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"ImageNet root {root} not found; expected the ILSVRC-2012 train tree root/<wnid>/*.JPEG "
            "(extract ILSVRC2012_img_train.tar and its per-class tars there)"
        )
    return ImageFolder(str(root), transform=imagenet_transform(image_size, flip))


def load_autoencoder(path: str | Path, device: torch.device | str = "cpu"):
    """diffusers ``AutoencoderKL`` from a LOCAL folder (config.json + weights), frozen, eval mode."""
    from diffusers import AutoencoderKL

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"vae_path={path} holds no diffusers config.json; give a local copy of the SD-VAE "
            "(e.g. stabilityai/sd-vae-ft-mse saved with save_pretrained); nothing is downloaded"
        )
    vae = AutoencoderKL.from_pretrained(str(path), local_files_only=True)
    return vae.to(device).eval().requires_grad_(False)


@torch.no_grad()
def encode_moments(vae, images: Tensor) -> tuple[Tensor, Tensor]:
    """Posterior moments of images [B, 3, H, W] in [-1, 1]: (mean, logvar) [B, c, H/8, W/8], unscaled."""
    dist = vae.encode(images).latent_dist
    return dist.mean.float(), dist.logvar.float()


def cache_latents(
    dataset,
    vae,
    out_dir: str | Path,
    shard_size: int = 10_000,
    batch_size: int = 64,
    flips: bool = True,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Encode an ImageFolder-like ``dataset`` (built with ``flip=False``) into sharded moment files.

    Shard k holds dataset items [k * shard_size, (k + 1) * shard_size); this rank writes shards with
    k % world_size == rank, skipping shards already on disk. Rank 0 writes ``index.json``. Returns out_dir.
    """
    if shard_size < 1 or batch_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"shard_size={shard_size}, batch_size={batch_size}, rank={rank}, world_size={world_size}; "
            "expected sizes >= 1 and 0 <= rank < world_size"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(dataset)
    num_shards = (n + shard_size - 1) // shard_size
    for shard in range(rank, num_shards, world_size):
        path = out_dir / f"shard_{shard:05d}.safetensors"
        if path.is_file():  # a rerun resumes where the last one stopped
            continue
        indices = range(shard * shard_size, min(n, (shard + 1) * shard_size))
        save_weights(_encode_shard(dataset, indices, vae, batch_size, num_workers, flips, dtype), path)
    if rank == 0:
        index = {"num_samples": n, "shard_size": shard_size, "num_shards": num_shards, "flips": flips,
                 "latent_scale": LATENT_SCALE, "classes": list(getattr(dataset, "classes", []))}
        atomic_write(out_dir / INDEX_NAME, lambda tmp: Path(tmp).write_text(json.dumps(index, indent=1)))
    return out_dir


def _encode_shard(dataset, indices: range, vae, batch_size: int, num_workers: int, flips: bool,
                  dtype: torch.dtype) -> dict[str, Tensor]:
    """mean/logvar [n, c, h, w] (and those of the mirrored images) and labels [n] of items ``indices``."""
    from torch.utils.data import DataLoader, Subset

    device = next(vae.parameters()).device
    loader = DataLoader(Subset(dataset, indices), batch_size=batch_size, num_workers=num_workers)
    tensors: dict[str, list[Tensor]] = {"mean": [], "logvar": [], "labels": []}
    if flips:
        tensors.update(mean_flip=[], logvar_flip=[])
    for images, labels in loader:
        images = images.to(device)
        views = [("", images), ("_flip", images.flip(-1))] if flips else [("", images)]
        for suffix, view in views:
            mean, logvar = encode_moments(vae, view)
            tensors["mean" + suffix].append(mean.to(dtype).cpu())
            tensors["logvar" + suffix].append(logvar.to(dtype).cpu())
        tensors["labels"].append(torch.as_tensor(labels, dtype=torch.int64))
    return {k: torch.cat(v) for k, v in tensors.items()}


class LatentCache:
    """Reads a cache written by :func:`cache_latents`; draws scaled posterior samples.

    ``moments(indices)`` -> (mean, logvar, labels); ``sample(indices, generator, flip=None)`` ->
    (z [B, c, h, w] = (mean + std * eps) * LATENT_SCALE, labels [B]). Shards are read whole on first use.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        index_path = self.root / INDEX_NAME
        if not index_path.is_file():
            raise FileNotFoundError(f"latent cache {index_path} not found; build it with cache_latents first")
        self.index = json.loads(index_path.read_text())
        missing = [k for k in range(self.index["num_shards"]) if not self._shard_path(k).is_file()]
        if missing:
            raise FileNotFoundError(
                f"latent cache {self.root} lacks shards {missing[:5]}; rerun cache_latents (it resumes)"
            )
        self._shards: dict[int, dict[str, Tensor]] = {}

    def __len__(self) -> int:
        return int(self.index["num_samples"])

    def _shard_path(self, k: int) -> Path:
        return self.root / f"shard_{k:05d}.safetensors"

    def _shard(self, k: int) -> dict[str, Tensor]:
        if k not in self._shards:
            from safetensors.torch import load_file

            self._shards[k] = load_file(str(self._shard_path(k)))
        return self._shards[k]

    def moments(self, indices: Tensor, flip: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(mean, logvar) float32 [B, c, h, w] and labels [B] of dataset items ``indices`` [B]."""
        size = self.index["shard_size"]
        if flip is not None and flip.any() and not self.index["flips"]:
            raise ValueError(f"latent cache {self.root} was built with flips=False; sample with flip=False")
        means, logvars, labels = [], [], []
        for j, i in enumerate(indices.tolist()):
            if not 0 <= i < len(self):
                raise IndexError(f"index {i} outside the cache's {len(self)} samples")
            shard = self._shard(i // size)
            suffix = "_flip" if flip is not None and bool(flip[j]) else ""
            means.append(shard["mean" + suffix][i % size])
            logvars.append(shard["logvar" + suffix][i % size])
            labels.append(shard["labels"][i % size])
        return torch.stack(means).float(), torch.stack(logvars).float(), torch.stack(labels)

    def sample(
        self,
        indices: Tensor,
        generator: torch.Generator,
        flip: bool | None = None,
        posterior: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """Scaled latents [B, c, h, w] and labels; ``flip=None`` flips each with p=0.5 if flips are cached."""
        if flip is None:
            flips = torch.rand(len(indices), generator=generator) < 0.5
            flips &= bool(self.index["flips"])
        else:
            flips = torch.full((len(indices),), bool(flip))
        mean, logvar, labels = self.moments(indices, flips)
        if not posterior:
            return mean * LATENT_SCALE, labels
        eps = torch.randn(mean.shape, generator=generator)
        return (mean + torch.exp(0.5 * logvar) * eps) * LATENT_SCALE, labels

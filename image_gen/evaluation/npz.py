"""N samples of a checkpoint as an ``.npz`` in the layout of ADM's evaluator (guided-diffusion ``sample.py``)
and the torch-fidelity / clean-fid readers, written across ranks (the library of ``image-gen-sample --npz``).

``arr_0`` uint8 [N, H, W, C] (C = 1, or 3 with ``rgb``), ``arr_1`` int64 class labels [N]. Sample i has class
i mod K and its own noise from seed ``seed + i``, so the file is the same for any world size and batch size:
rank r draws a contiguous slice of the indices, writes a part file, rank 0 merges them in index order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from image_gen.data.fmnist import NUM_CLASSES
from image_gen.distributed import DistInfo
from image_gen.runtime import pick_device
from image_gen.sampling import load_sampler_and_decoder


def rank_slice(n: int, info: DistInfo) -> range:
    """Contiguous, disjoint slice of range(n) for this rank; together the ranks cover it once."""
    start = n * info.rank // info.world_size
    return range(start, n * (info.rank + 1) // info.world_size)


def per_sample_noise(config, indices: range, seed: int) -> tuple[Tensor, Tensor]:
    """Noise [n, C, H, W] and style indices [n, S], sample i from its own generator seeded seed + i."""
    noise, style = [], []
    for i in indices:
        generator = torch.Generator().manual_seed(seed + i)
        noise.append(
            torch.randn(config.in_channels, config.input_size, config.input_size, generator=generator)
        )
        style.append(
            torch.randint(config.style_codebook_size, (config.num_style_tokens,), generator=generator)
        )
    return torch.stack(noise), torch.stack(style)


def to_uint8_nhwc(images: Tensor, rgb: bool) -> np.ndarray:
    """[-1, 1] images [n, C, H, W] -> uint8 [n, H, W, C] (C -> 3 when rgb and C == 1)."""
    pixels = images.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)  # [n, C, H, W]
    if rgb and pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    return pixels.permute(0, 2, 3, 1).contiguous().numpy()


@torch.no_grad()
def sample_slice(
    args, indices: range, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, H, W, C] samples and int64 labels [n] of ``indices``, in batches of ``args.batch_size``."""
    sampler, vae, _ = load_sampler_and_decoder(args.checkpoint, device, args.nfe)
    labels = torch.tensor([i % NUM_CLASSES for i in indices], dtype=torch.int64)  # [n]
    chunks = []
    for start in range(0, len(indices), args.batch_size):
        part = indices[start : start + args.batch_size]
        noise, style = per_sample_noise(sampler.config, part, args.seed)
        rows = labels[start : start + len(part)].to(device)
        x = sampler.from_noise(noise.to(device), style.to(device), rows, args.alpha)
        chunks.append(to_uint8_nhwc((x if vae is None else vae.decode(x)).cpu(), args.rgb))
    empty = np.zeros((0, 1, 1, 1), np.uint8)
    return (np.concatenate(chunks) if chunks else empty), labels.numpy()


def write_npz(args, info: DistInfo) -> None:
    """Each rank samples its slice to ``<npz>.rank<r>.npz``; rank 0 merges them into ``args.npz``."""
    out = Path(args.npz)
    out.parent.mkdir(parents=True, exist_ok=True)
    device = info.device if args.device == "auto" else pick_device(args.device)
    images, labels = sample_slice(args, rank_slice(args.n_samples, info), device)
    part = out.with_name(f"{out.stem}.rank{info.rank}.npz")
    np.savez(part, arr_0=images, arr_1=labels)
    info.barrier()
    if info.is_main:
        parts = [out.with_name(f"{out.stem}.rank{r}.npz") for r in range(info.world_size)]
        loaded = [np.load(p) for p in parts]
        merged = np.concatenate([p["arr_0"] for p in loaded if len(p["arr_1"])])
        np.savez(out, arr_0=merged, arr_1=np.concatenate([p["arr_1"] for p in loaded]))
        for p in parts:
            p.unlink()
        print(
            f"wrote {out}: arr_0 {merged.dtype} {list(merged.shape)}, arr_1 labels, {info.world_size} rank(s)"
        )
    info.barrier()

"""``image-gen-sample``: a class-by-row sample grid (PNG), or N samples as an ``.npz`` across ranks.

image-gen-sample --checkpoint runs/imagegen_smoke/model.safetensors --alpha 1.5 --out grid.png
image-gen-sample --checkpoint ... --alphas 1 1.5 2 3 --out sweep.png     # one block of rows per alpha
image-gen-sample --checkpoint runs/flow_latent/model.safetensors --nfe 10 --alpha 1 --out flow.png
image-gen-sample --checkpoint ... --npz samples.npz --n-samples 50000 --alpha 1.5 [--nfe 10] [--rgb]
torchrun --nproc_per_node 8 -m image_gen.sample --checkpoint ... --npz samples.npz --n-samples 50000

The ``.npz`` has the layout of ADM's evaluator (guided-diffusion ``sample.py``) and torch-fidelity / clean-fid
readers: ``arr_0`` uint8 [N, H, W, C] (C = 1, or 3 with ``--rgb``), ``arr_1`` int64 class labels [N].
Sample i has class i mod K and its own noise from seed ``seed + i``, so the file is the same for any world
size and batch size: rank r draws a contiguous slice of the indices, writes a part file, rank 0 merges them
in index order.
Works for drifting (1 NFE) and flow checkpoints (``--nfe`` Euler steps).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from image_gen.data import NUM_CLASSES
from image_gen.distributed import DistInfo, cleanup, init_distributed
from image_gen.evaluate import EVAL_SEED, generate_samples
from image_gen.utils import pick_device, save_grid


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
    args: argparse.Namespace, indices: range, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, H, W, C] samples and int64 labels [n] of ``indices``, in batches of ``args.batch_size``."""
    from image_gen.flow import load_sampler_and_decoder

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


def write_npz(args: argparse.Namespace, info: DistInfo) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument(
        "--alphas", type=float, nargs="+", default=[1.5], help="CFG scales, one grid block each"
    )
    parser.add_argument("--alpha", type=float, default=None, help="shorthand for a single --alphas value")
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="samples.png")
    parser.add_argument("--npz", default=None, help="write --n-samples samples here instead of a grid")
    parser.add_argument("--n-samples", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--nfe", type=int, default=None, help="Euler steps of a flow checkpoint")
    parser.add_argument("--rgb", action="store_true", help="repeat a 1-channel image to 3 channels")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    alphas = [args.alpha] if args.alpha is not None else args.alphas
    if args.npz:
        if len(alphas) != 1:
            raise SystemExit(f"--npz takes one CFG scale; got --alphas {alphas}")
        args.alpha = alphas[0]
        info = init_distributed()
        try:
            write_npz(args, info)
        finally:
            cleanup()
        return
    blocks = []
    for alpha in alphas:
        images, labels, _ = generate_samples(  # flow checkpoints too, at --nfe Euler steps
            args.checkpoint, NUM_CLASSES * args.per_class, alpha, args.seed, pick_device(args.device),
            nfe=args.nfe,
        )
        blocks.append(images[torch.argsort(labels, stable=True)])  # class-major rows
    save_grid(torch.cat(blocks), args.out, nrow=args.per_class)
    print(
        f"wrote {args.out}: {len(alphas)} alpha value(s) {alphas}, {args.per_class} samples per class per row"
    )


if __name__ == "__main__":
    main()

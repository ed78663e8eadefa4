"""``image-gen-cache-latents ROOT VAE_PATH OUT_DIR``: one-off SD-VAE latent cache of ImageNet train.

    image-gen-cache-latents /data/ILSVRC2012/train /models/sd-vae-ft-mse runs/imagenet_latents
    torchrun --nproc_per_node 8 -m image_gen.cache_latents ROOT VAE_PATH OUT_DIR    # ranks split the shards

A tool, not a training run: argparse with positional paths (the library is image_gen.data.imagenet).
"""

from __future__ import annotations

import argparse

import torch

from drifting_policy.common.entry import report_user_errors
from image_gen.data.imagenet import IMAGE_SIZE, cache_latents, imagenet_folder, load_autoencoder
from image_gen.distributed import init_distributed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="image-gen-cache-latents", description=__doc__.split("\n")[0])
    parser.add_argument("root", help="ILSVRC-2012 train folder (root/<wnid>/*.JPEG)")
    parser.add_argument("vae_path", help="local diffusers AutoencoderKL folder (SD-VAE)")
    parser.add_argument("out_dir")
    parser.add_argument("--image-size", type=int, default=IMAGE_SIZE)
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--no-flips", action="store_true")
    return parser


@report_user_errors  # a missing folder or VAE is one line, exit 2
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    dist = init_distributed()
    device = dist.device if dist.device.type == "cuda" else torch.device("cpu")
    dataset = imagenet_folder(args.root, args.image_size, flip=False)
    vae = load_autoencoder(args.vae_path, device)
    cache_latents(dataset, vae, args.out_dir, args.shard_size, args.batch_size, flips=not args.no_flips,
                  rank=dist.rank, world_size=dist.world_size, num_workers=args.workers)


if __name__ == "__main__":
    main()

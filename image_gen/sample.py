"""``image-gen-sample``: a class-by-row sample grid (PNG) from a trained generator, 1 NFE per image.

image-gen-sample --checkpoint runs/imagegen_smoke/model.safetensors --alpha 1.5 --out grid.png
image-gen-sample --checkpoint ... --alphas 1 1.5 2 3 --out sweep.png     # one block of rows per alpha
"""

from __future__ import annotations

import argparse

import torch

from image_gen.data import NUM_CLASSES
from image_gen.evaluate import EVAL_SEED, generate_samples
from image_gen.utils import pick_device, save_grid


def main(argv: list[str] | None = None) -> None:
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
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    alphas = [args.alpha] if args.alpha is not None else args.alphas
    blocks = []
    for alpha in alphas:
        images, labels, _ = generate_samples(
            args.checkpoint, NUM_CLASSES * args.per_class, alpha, args.seed, pick_device(args.device)
        )
        blocks.append(images[torch.argsort(labels, stable=True)])  # class-major rows
    save_grid(torch.cat(blocks), args.out, nrow=args.per_class)
    print(
        f"wrote {args.out}: {len(alphas)} alpha value(s) {alphas}, {args.per_class} samples per class per row"
    )


if __name__ == "__main__":
    main()

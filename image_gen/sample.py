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

import torch

from drifting_policy.common.entry import report_user_errors
from image_gen.data.fmnist import NUM_CLASSES
from image_gen.distributed import cleanup, init_distributed
from image_gen.evaluation.npz import write_npz
from image_gen.evaluation.scoring import EVAL_SEED, generate_samples
from image_gen.run_folder import save_grid
from image_gen.runtime import pick_device
from image_gen.sampling import generator_metadata


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


@report_user_errors  # a bad input (missing, damaged or foreign checkpoint, bad option) is one line, exit 2
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    generator_metadata(args.checkpoint)  # a wrong file stops here, before any process group or sampling
    alphas = [args.alpha] if args.alpha is not None else args.alphas
    if args.npz:
        if len(alphas) != 1:
            raise ValueError(f"--npz takes one CFG scale; got --alphas {alphas}")
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

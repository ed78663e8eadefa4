"""``image-gen-eval``: sample a trained generator and score it with the project's evaluation network.

    image-gen-eval --checkpoint runs/imagegen_smoke/model.safetensors \
        --evaluator runs/evaluator/evaluator.safetensors
    image-gen-eval --checkpoint runs/flow_latent/model.safetensors --nfe 10 --alpha 1 ...   # flow baseline
    image-gen-eval --evaluator ...      # no checkpoint: the calibration table alone

Reference set: the test split (never used in training). Metrics in the evaluator's feature space: Frechet
distance ``fd``, ``kid``, ``precision``, ``recall``, and ``class_accuracy`` of conditional samples; plus the
median pixel distance of samples to their nearest training image (memorisation check). Calibration rows: the
train split vs the test split (floor), per-class mean image, per-class Gaussian, copies of training images.
Drifting checkpoints sample in one network call; flow checkpoints (``image-gen-train-flow``) integrate
``--nfe`` Euler steps (``--alpha`` is then the CFG guidance scale w). The result JSON also records
``model_kind``, ``nfe`` and the generator's wall time per image (VAE decoding excluded) and per NFE.
The last printed line is the result JSON (also written to --out when given).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import Tensor

from image_gen.data import DEFAULT_ROOT, NUM_CLASSES, load_pixels
from image_gen.metrics import (
    INCEPTION_MISSING,
    all_metrics,
    frechet_distance,
    inception_features,
    load_inception,
    nearest_train_distance,
)
from image_gen.models.classifier import embed
from image_gen.train_evaluator import load_evaluator
from image_gen.utils import pick_device

EVAL_SEED = 10_000  # sampling seed for evaluation; training seeds stay below it


def balanced_labels(n_samples: int) -> Tensor:
    return torch.arange(n_samples) % NUM_CLASSES  # [n]


@torch.no_grad()
def generate_samples(
    checkpoint: str | Path,
    n_samples: int,
    alpha: float,
    seed: int,
    device: torch.device,
    batch_size: int = 500,
    nfe: int | None = None,
) -> tuple[Tensor, Tensor, dict]:
    """Pixels [n, 1, 32, 32] in [-1, 1], labels [n], and the checkpoint metadata plus ``model_kind``,
    ``nfe`` and ``sample_seconds`` (generator time, VAE decoding excluded); latents are decoded by the
    checkpoint's VAE.

    Drifting or flow checkpoint (:func:`image_gen.flow.load_any_generator`); ``nfe``: Euler steps of a flow
    model (None: 1); a drifting generator samples in 1 NFE and refuses nfe > 1 (ValueError).
    """
    from image_gen.flow import load_sampler_and_decoder

    model, vae, meta = load_sampler_and_decoder(checkpoint, device, nfe)
    labels = balanced_labels(n_samples)
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    for start in range(0, n_samples, batch_size):
        x = model.generate(labels[start : start + batch_size].to(device), alpha, generator)
        chunks.append((x if vae is None else vae.decode(x)).float().clamp(-1, 1).cpu())
    info = {**meta, "model_kind": meta.get("model_kind", "drifting"), "nfe": model.nfe}
    info["sample_seconds"] = model.seconds
    return torch.cat(chunks), labels, info


def score(
    evaluator, images: Tensor, labels: Tensor, ref_feats: Tensor, train_images: Tensor, device: torch.device
) -> dict[str, float]:
    feats, logits = embed(evaluator, images.to(device))
    result = all_metrics(ref_feats, feats.cpu(), logits.cpu(), labels)
    result["nn_train_dist"] = float(nearest_train_distance(images[:1000], train_images).median())
    return result


def calibration(
    evaluator,
    n: int,
    train: tuple[Tensor, Tensor],
    test_images: Tensor,
    ref_feats: Tensor,
    device: torch.device,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Scores of trivial 'generators' under the same protocol (n samples, balanced classes).

    train_split_floor: n real training images (its nn_train_dist is that of real *test* images: what an
    unseen real image scores); class_mean_image; class_gaussian (top-2000-sample PCA fit per class);
    train_copies: the same training images, so nn_train_dist = 0 (memorisation).
    """
    images, labels = train
    generator = torch.Generator().manual_seed(seed)
    wanted = balanced_labels(n)
    picks = torch.cat(
        [
            torch.nonzero(labels == c).flatten()[
                torch.randperm(int((labels == c).sum()), generator=generator)[: int((wanted == c).sum())]
            ]
            for c in range(NUM_CLASSES)
        ]
    )
    floor = images[picks], labels[picks]  # real training images: the noise floor vs the test split
    means = torch.stack([images[labels == c].mean(0) for c in range(NUM_CLASSES)])  # [K, 1, 32, 32]
    flat = images.flatten(1)
    class_gauss = torch.empty(n, flat.shape[1])
    for c in range(NUM_CLASSES):
        rows = flat[labels == c]
        mean, centred = rows.mean(0), rows - rows.mean(0)
        _, s, v = torch.linalg.svd(centred[:2000], full_matrices=False)  # top components of the class
        k = (wanted == c).sum()
        coef = (
            torch.randn(int(k), s.shape[0], generator=generator) * s / (min(2000, rows.shape[0]) - 1) ** 0.5
        )
        class_gauss[wanted == c] = mean + coef @ v
    rows = {
        "train_split_floor": floor,
        "class_mean_image": (means[wanted], wanted),
        "class_gaussian": (class_gauss.view(n, 1, 32, 32).clamp(-1, 1), wanted),
    }
    out = {name: score(evaluator, x, y, ref_feats, images, device) for name, (x, y) in rows.items()}
    # Memorisation reference: copies score the floor's fd but sit at distance 0 from the training set;
    # the floor row reports where unseen real images (the test split) sit instead.
    out["train_copies"] = dict(out["train_split_floor"])
    out["train_split_floor"]["nn_train_dist"] = float(
        nearest_train_distance(test_images[:1000], images).median()
    )
    return out


def evaluate(args: argparse.Namespace) -> dict:
    device = pick_device(args.device)
    evaluator, eval_meta = load_evaluator(args.evaluator, device)
    train_images, train_labels = load_pixels("train", args.data_root)
    test_images, _ = load_pixels("test", args.data_root)
    ref_feats, _ = embed(evaluator, test_images.to(device))
    ref_feats = ref_feats.cpu()
    result: dict = {
        "n_samples": args.n_samples,
        "reference": "fashion-mnist test split (10000)",
        "evaluator": args.evaluator,
        "evaluator_hash": eval_meta["hash"],
        "evaluator_test_accuracy": eval_meta["test_accuracy"],
        "seed": args.seed,
    }
    start = time.time()
    if args.checkpoint:
        images, labels, meta = generate_samples(
            args.checkpoint, args.n_samples, args.alpha, args.seed, device, nfe=args.nfe
        )
        result.update(score(evaluator, images, labels, ref_feats, train_images, device))
        result.update(
            {
                "checkpoint": args.checkpoint,
                "cfg_alpha": args.alpha,
                "step": meta.get("step"),
                "space": meta.get("space"),
                "encoder": meta.get("encoder_path"),
                "vae": meta.get("vae_path"),
                "model_kind": meta["model_kind"],
                "nfe": meta["nfe"],
                "sample_seconds_per_image": meta["sample_seconds"] / args.n_samples,
                "sample_seconds_per_image_per_nfe": meta["sample_seconds"] / args.n_samples / meta["nfe"],
            }
        )
        if args.inception_weights:
            inception = load_inception(args.inception_weights)
            result["inception_fid"] = frechet_distance(
                inception_features(inception, test_images), inception_features(inception, images)
            )
        else:
            print(INCEPTION_MISSING)
            result["inception_fid"] = None
    if args.calibrate or not args.checkpoint:
        result["calibration"] = calibration(
            evaluator, args.n_samples, (train_images, train_labels), test_images, ref_feats, device, args.seed
        )
    result["eval_seconds"] = time.time() - start
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", help="model.safetensors of an image-gen-train run (omit: calibration only)"
    )
    parser.add_argument("--evaluator", default="runs/evaluator/evaluator.safetensors")
    parser.add_argument("--n-samples", type=int, default=5000)
    parser.add_argument(
        "--alpha", type=float, default=1.5, help="CFG scale (1 = no guidance); flow: guidance scale w"
    )
    parser.add_argument(
        "--nfe", type=int, default=None,
        help="Euler steps of a flow checkpoint (default 1); drifting checkpoints are 1-NFE and refuse > 1",
    )
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    parser.add_argument("--calibrate", action="store_true", help="also score the trivial baselines")
    parser.add_argument("--inception-weights", default=None, help="local Inception-v3 file for standard FID")
    parser.add_argument("--data-root", default=DEFAULT_ROOT)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the JSON here")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.n_samples < NUM_CLASSES:
        raise SystemExit(f"--n-samples={args.n_samples}; need at least {NUM_CLASSES} (one per class)")
    torch.set_num_threads(args.num_threads)  # process-wide: the entry point's job, not evaluate()'s
    result = evaluate(args)
    line = json.dumps(result)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()

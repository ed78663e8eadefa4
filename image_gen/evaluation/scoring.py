"""Scoring generators with the evaluation network: samples of a checkpoint, metrics against the test split,
and the calibration rows of trivial generators (the library of ``image-gen-eval``).

Reference set: the test split (never used in training). Metrics in the evaluator's feature space: Frechet
distance ``fd``, ``kid``, ``precision``, ``recall``, and ``class_accuracy`` of conditional samples; plus the
median pixel distance of samples to their nearest training image (memorisation check).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import Tensor

from image_gen.data.fmnist import NUM_CLASSES, load_pixels
from image_gen.evaluation.metrics import (
    INCEPTION_MISSING,
    all_metrics,
    frechet_distance,
    inception_features,
    load_inception,
    nearest_train_distance,
)
from image_gen.models.classifier import embed, load_evaluator
from image_gen.runtime import pick_device
from image_gen.sampling import generator_metadata, load_sampler_and_decoder

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

    Drifting or flow checkpoint (:func:`image_gen.sampling.load_any_generator`); ``nfe``: Euler steps of a
    flow model (None: 1); a drifting generator samples in 1 NFE and refuses nfe > 1 (ValueError).
    """
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
    wanted = balanced_labels(n)  # [n]
    picks = torch.cat([  # real training images: the noise floor vs the test split
        torch.nonzero(labels == c).flatten()[
            torch.randperm(int((labels == c).sum()), generator=generator)[: int((wanted == c).sum())]
        ]
        for c in range(NUM_CLASSES)
    ])
    means = torch.stack([images[labels == c].mean(0) for c in range(NUM_CLASSES)])  # [K, 1, 32, 32]
    rows = {
        "train_split_floor": (images[picks], labels[picks]),
        "class_mean_image": (means[wanted], wanted),
        "class_gaussian": (class_gaussians(images, labels, wanted, generator), wanted),
    }
    out = {name: score(evaluator, x, y, ref_feats, images, device) for name, (x, y) in rows.items()}
    # Memorisation reference: copies score the floor's fd but sit at distance 0 from the training set;
    # the floor row reports where unseen real images (the test split) sit instead.
    out["train_copies"] = dict(out["train_split_floor"])
    out["train_split_floor"]["nn_train_dist"] = float(
        nearest_train_distance(test_images[:1000], images).median()
    )
    return out


def class_gaussians(images: Tensor, labels: Tensor, wanted: Tensor, generator: torch.Generator,
                    fit_rows: int = 2000) -> Tensor:
    """One draw per entry of ``wanted`` [n] from a Gaussian fitted to that class's images [N, 1, 32, 32]
    (mean + top principal components of its first ``fit_rows`` images): [n, 1, 32, 32] in [-1, 1]."""
    flat = images.flatten(1)  # [N, D]
    out = torch.empty(len(wanted), flat.shape[1])  # [n, D]
    for c in range(NUM_CLASSES):
        rows = flat[labels == c]
        mean, centred = rows.mean(0), rows - rows.mean(0)
        _, s, v = torch.linalg.svd(centred[:fit_rows], full_matrices=False)  # top components of the class
        k = int((wanted == c).sum())
        coef = torch.randn(k, s.shape[0], generator=generator) * s / (min(fit_rows, rows.shape[0]) - 1) ** 0.5
        out[wanted == c] = mean + coef @ v
    return out.view(len(wanted), *images.shape[1:]).clamp(-1, 1)


def evaluate(args) -> dict:
    """The result JSON of ``image-gen-eval`` (``args``: its parsed options)."""
    if args.checkpoint:
        generator_metadata(args.checkpoint)  # a wrong file stops here, before the evaluator and the data
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
        result.update(score_checkpoint(args, evaluator, ref_feats, train_images, test_images, device))
    if args.calibrate or not args.checkpoint:
        result["calibration"] = calibration(
            evaluator, args.n_samples, (train_images, train_labels), test_images, ref_feats, device, args.seed
        )
    result["eval_seconds"] = time.time() - start
    return result


def score_checkpoint(args, evaluator, ref_feats: Tensor, train_images: Tensor, test_images: Tensor,
                     device: torch.device) -> dict:
    """Metrics, provenance and timings of ``args.checkpoint``'s samples (Inception FID when weights given)."""
    images, labels, meta = generate_samples(
        args.checkpoint, args.n_samples, args.alpha, args.seed, device, nfe=args.nfe
    )
    result = score(evaluator, images, labels, ref_feats, train_images, device)
    result.update({
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
    })
    result["inception_fid"] = None
    if args.inception_weights:
        inception = load_inception(args.inception_weights)
        result["inception_fid"] = frechet_distance(
            inception_features(inception, test_images), inception_features(inception, images)
        )
    else:
        print(INCEPTION_MISSING)
    return result

"""``image-gen-train-evaluator``: train the evaluation classifier once (Fashion-MNIST train split, labels).

    image-gen-train-evaluator --out runs/evaluator/evaluator.safetensors --epochs 3

The file holds weights plus metadata (config, test accuracy, weights hash); every evaluation records the hash.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from image_gen.data import DEFAULT_ROOT, load_pixels
from image_gen.models.classifier import ClassifierConfig, EvalClassifier, embed, weights_hash
from image_gen.utils import atomic_save_weights, load_weights, pick_device, warmup_cosine


@dataclass
class EvaluatorTrainConfig:
    out: str = "runs/evaluator/evaluator.safetensors"
    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    data_root: str = DEFAULT_ROOT
    limit_per_class: int | None = None
    epochs: int = 2
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    device: str = "auto"
    num_threads: int = 1  # set by main(), never by train_evaluator()

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = ClassifierConfig(**self.model)
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs={self.epochs}, batch_size={self.batch_size}; expected both >= 1")


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and +-2 px shift (images [B, 1, 32, 32], background -1)."""
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=generator))
    padded = F.pad(x, (2, 2, 2, 2), value=-1.0)
    return padded[..., 2 + dy : 2 + dy + x.shape[-2], 2 + dx : 2 + dx + x.shape[-1]]


def train_evaluator(config: EvaluatorTrainConfig) -> EvalClassifier:
    """Train, score on the test split and save; deterministic in config.seed (initial weights and dropout
    draw from the global RNG, seeded on a fork so that the caller's RNG is left as it was)."""
    device = pick_device(config.device)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(config.seed)
        return _train_evaluator(config, device)


def _train_evaluator(config: EvaluatorTrainConfig, device: torch.device) -> EvalClassifier:
    images, labels = load_pixels("train", config.data_root, config.limit_per_class)
    test_images, test_labels = load_pixels("test", config.data_root)
    model = EvalClassifier(config.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.05)
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = images.shape[0] // config.batch_size
    total = steps_per_epoch * config.epochs
    start = time.time()
    for step in tqdm(range(total), desc="evaluator", mininterval=5.0):
        if step % steps_per_epoch == 0:
            order = torch.randperm(images.shape[0], generator=generator)
        index = order[(step % steps_per_epoch) * config.batch_size :][: config.batch_size]
        for group in optimizer.param_groups:
            group["lr"] = config.lr * warmup_cosine(step, min(100, total // 10), total)
        model.train()
        loss = F.cross_entropy(model(augment(images[index], generator).to(device)), labels[index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _, logits = embed(model, test_images.to(device))
    accuracy = float((logits.argmax(1).cpu() == test_labels).float().mean())
    model = model.cpu().eval()
    meta = {
        "classifier_config": dataclasses.asdict(config.model),
        "test_accuracy": accuracy,
        "hash": weights_hash(model),
        "epochs": config.epochs,
        "train_seconds": time.time() - start,
    }
    out = Path(config.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_weights(model.state_dict(), out, meta)
    print(f"evaluator saved to {out}: test accuracy {accuracy:.4f}, hash {meta['hash']}")
    return model


def load_evaluator(path: str | Path, device: torch.device | str = "cpu") -> tuple[EvalClassifier, dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"evaluator weights {path} not found; train them once with "
            f"`image-gen-train-evaluator --out {path}`"
        )
    weights, metadata = load_weights(path)
    model = EvalClassifier(ClassifierConfig(**metadata["classifier_config"]))
    model.load_state_dict(weights)
    return model.to(device).eval(), metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=EvaluatorTrainConfig.out)
    parser.add_argument("--epochs", type=int, default=EvaluatorTrainConfig.epochs)
    parser.add_argument("--width", type=int, default=ClassifierConfig.width)
    parser.add_argument("--limit-per-class", type=int, default=None)
    parser.add_argument("--data-root", default=DEFAULT_ROOT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    torch.set_num_threads(EvaluatorTrainConfig.num_threads)  # process-wide: the entry point's job
    train_evaluator(
        EvaluatorTrainConfig(
            out=args.out,
            model=ClassifierConfig(width=args.width),
            data_root=args.data_root,
            limit_per_class=args.limit_per_class,
            epochs=args.epochs,
            seed=args.seed,
            device=args.device,
        )
    )


if __name__ == "__main__":
    main()

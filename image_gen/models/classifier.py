"""Evaluation network: a supervised VGG-style CNN classifier, deliberately unlike the drift-loss encoder.

The drift encoder is a self-supervised ResNet with GroupNorm; the evaluator is a plain conv/BatchNorm/max-pool
network trained with labels, so the generator cannot optimise the metric's feature space directly. Its
penultimate activations (``feature_dim`` floats) define the Frechet distance, KID and precision/recall; its
logits give the class accuracy of conditional samples.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from drifting_policy.common.io import save_weights
from image_gen.weight_files import build_config, load_into, read_weights


@dataclass
class ClassifierConfig:
    in_channels: int = 1
    width: int = 16
    feature_dim: int = 128
    num_classes: int = 10
    dropout: float = 0.3

    def __post_init__(self):
        if self.width < 1 or self.feature_dim < 1 or self.num_classes < 2:
            raise ValueError(
                f"width={self.width}, feature_dim={self.feature_dim}, num_classes={self.num_classes}: "
                "expected width, feature_dim >= 1 and num_classes >= 2"
            )


def conv_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class EvalClassifier(nn.Module):
    """x [B, 1, 32, 32] in [-1, 1] -> logits [B, num_classes]; ``features`` gives [B, feature_dim]."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        w = config.width
        self.body = nn.Sequential(
            conv_bn(config.in_channels, w),
            conv_bn(w, w),
            nn.MaxPool2d(2),  # 16x16
            conv_bn(w, 2 * w),
            conv_bn(2 * w, 2 * w),
            nn.MaxPool2d(2),  # 8x8
            conv_bn(2 * w, 4 * w),
            nn.MaxPool2d(2),  # 4x4
            nn.Flatten(),
            nn.Linear(4 * w * 16, config.feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Dropout(config.dropout), nn.Linear(config.feature_dim, config.num_classes)
        )

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)  # [B, feature_dim]

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))  # [B, num_classes]


def weights_hash(module: nn.Module) -> str:
    """Short content hash of a network's weights: the evaluator id recorded with every result."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


@torch.no_grad()
def embed(model: EvalClassifier, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """(features [N, feature_dim], logits [N, num_classes]) in float64/float32, model in eval mode."""
    model.eval()
    feats, logits = [], []
    for start in range(0, images.shape[0], batch_size):
        f = model.features(images[start : start + batch_size].float())
        feats.append(f.double())
        logits.append(model.head(f))
    return torch.cat(feats), torch.cat(logits)


def save_evaluator(model: EvalClassifier, path: str | Path, extra: dict | None = None) -> None:
    """Weights plus ``classifier_config`` (and ``extra``: accuracy, hash) in one safetensors file."""
    meta = {"classifier_config": dataclasses.asdict(model.config), **(extra or {})}
    save_weights(model.state_dict(), path, meta)


def load_evaluator(path: str | Path, device: torch.device | str = "cpu") -> tuple[EvalClassifier, dict]:
    """(network in eval mode, metadata) from a file written by :func:`save_evaluator`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"evaluator weights {path} not found; train them once with "
            f"`image-gen-train-evaluator out_dir={path.parent.parent} run_name={path.parent.name}`"
        )
    hint = "pass the evaluator.safetensors of an image-gen-train-evaluator run"
    weights, metadata = read_weights(path, "classifier_config", "an evaluator", hint)
    model = EvalClassifier(build_config(ClassifierConfig, metadata["classifier_config"], path,
                                        "classifier_config"))
    load_into(model, weights, path, hint)
    return model.to(device).eval(), metadata

"""The evaluator objective (``image-gen-train-evaluator``): the classifier whose features score samples,
trained once on Fashion-MNIST train with labels.

Writes runs/<run_name>/evaluator.safetensors after the last epoch: weights plus metadata (config, test
accuracy, weights hash); every evaluation records the hash. The budget is ``epochs`` over the train split, a
fresh permutation per epoch; random flips and shifts as augmentation. Dropout draws from torch's global RNG
(it takes no generator), so the objective keeps that stream's state itself (:class:`DropoutRng`): the
caller's RNG is untouched and a resume continues the stream exactly. One process (no torchrun).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from image_gen.data.fmnist import load_pixels
from image_gen.models.classifier import ClassifierConfig, EvalClassifier, embed, save_evaluator, weights_hash
from image_gen.objectives.base import Objective
from image_gen.training.config import ImageTrainConfig


@dataclass
class EvaluatorTrainConfig(ImageTrainConfig):
    objective: str = "evaluator"
    run_name: str = "evaluator"
    max_steps: int | None = None  # epochs * (train images // batch_size)
    lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.05
    warmup_steps: int | None = None
    lr_schedule: str = "cosine"
    grad_clip: float | None = None
    ema: bool = False
    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    epochs: int = 2
    batch_size: int = 128

    STEPS_FROM_EPOCHS: ClassVar[bool] = True

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = ClassifierConfig(**self.model)
        super().__post_init__()
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum != 1:
            raise ValueError(f"epochs={self.epochs}, batch_size={self.batch_size}, grad_accum="
                             f"{self.grad_accum}; expected epochs, batch_size >= 1 and grad_accum=1")


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random horizontal flip and +-2 px shift (images [B, 1, 32, 32], background -1)."""
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=generator))
    padded = F.pad(x, (2, 2, 2, 2), value=-1.0)
    return padded[..., 2 + dy : 2 + dy + x.shape[-2], 2 + dx : 2 + dx + x.shape[-1]]


class DropoutRng:
    """The global-RNG stream dropout draws from, kept apart from everyone else's: each use forks the global
    RNG, restores this stream and saves it back. Created where the global RNG is seeded (the Trainer's fork),
    it continues the stream the initial weights came from."""

    def __init__(self, seed: int, device: torch.device):
        self.cpu = torch.get_rng_state()
        self.cuda_devices = [device.index or 0] if device.type == "cuda" else []
        self.cuda = None
        if self.cuda_devices:
            with torch.random.fork_rng(devices=self.cuda_devices):
                torch.cuda.manual_seed(seed)
                self.cuda = torch.cuda.get_rng_state(self.cuda_devices[0])

    @contextlib.contextmanager
    def active(self):
        with torch.random.fork_rng(devices=self.cuda_devices):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, self.cuda_devices[0])
            yield
            self.cpu = torch.get_rng_state()
            if self.cuda is not None:
                self.cuda = torch.cuda.get_rng_state(self.cuda_devices[0])

    def state_dict(self) -> dict[str, Tensor]:
        cuda = {"dropout_rng.cuda": self.cuda} if self.cuda is not None else {}
        return {"dropout_rng.cpu": self.cpu, **cuda}

    def load_state_dict(self, tensors: dict[str, Tensor]) -> None:
        self.cpu = tensors["dropout_rng.cpu"]
        if self.cuda is not None and "dropout_rng.cuda" in tensors:
            self.cuda = tensors["dropout_rng.cuda"]


class EvaluatorObjective(Objective):
    name = "evaluator"
    distributed = False

    def __init__(self, config: EvaluatorTrainConfig, dist_info, device):
        super().__init__(config, dist_info, device)
        self.images, self.labels = load_pixels("train", config.data_root, config.limit_per_class)
        self.test_images, self.test_labels = load_pixels("test", config.data_root)
        self.model = EvalClassifier(config.model).to(self.device)
        self.dropout_rng = DropoutRng(config.seed, self.device)
        self.steps_per_epoch = self.images.shape[0] // config.batch_size  # the last partial batch is dropped
        if self.steps_per_epoch < 1:
            raise ValueError(f"batch_size={config.batch_size} but only {self.images.shape[0]} train images; "
                             "lower batch_size or raise limit_per_class")
        self.order, self.position = torch.arange(0), 0  # this epoch's permutation, next batch in it

    def max_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    @property
    def images_per_step(self) -> int:
        return self.config.batch_size

    def sample_batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        size = self.config.batch_size
        if self.position == 0:
            self.order = torch.randperm(self.images.shape[0], generator=generator)
        index = self.order[self.position * size :][:size]
        self.position = (self.position + 1) % self.steps_per_epoch
        return augment(self.images[index], generator).to(self.device), self.labels[index].to(self.device)

    def micro_batches(self, batch):
        return [batch]

    def compute_loss(self, batch, generator) -> tuple[Tensor, dict[str, float]]:
        images, labels = batch
        with self.dropout_rng.active():
            logits = self.model(images)  # [B, K]
        return F.cross_entropy(logits, labels), {}

    def state_dict(self) -> tuple[dict[str, Tensor], dict]:
        return {"epoch_order": self.order, **self.dropout_rng.state_dict()}, {"epoch_position": self.position}

    def load_state_dict(self, tensors: dict[str, Tensor], meta: dict) -> None:
        self.order, self.position = tensors["epoch_order"], int(meta["epoch_position"])
        self.dropout_rng.load_state_dict(tensors)

    def finish(self, run_dir: Path, last_metrics: dict[str, float], train_seconds: float) -> dict[str, float]:
        """Test accuracy; writes evaluator.safetensors (weights, config, accuracy, hash)."""
        _, logits = embed(self.model, self.test_images.to(self.device))
        accuracy = float((logits.argmax(1).cpu() == self.test_labels).float().mean())
        model = self.model.eval()
        meta = {"test_accuracy": accuracy, "hash": weights_hash(model), "epochs": self.config.epochs,
                "train_seconds": train_seconds}
        path = Path(run_dir) / "evaluator.safetensors"
        save_evaluator(model, path, meta)
        print(f"evaluator saved to {path}: test accuracy {accuracy:.4f}, hash {meta['hash']}")
        return {"val/test_accuracy": accuracy}

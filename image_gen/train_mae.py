"""``image-gen-train-mae``: pre-train the drift-loss feature encoder (ResNet-GN MAE) on Fashion-MNIST train.

    image-gen-train-mae --config-name mae_smoke          # configs/image_gen/mae_smoke.yaml
    image-gen-train-mae steps=2000 mae.width=32
    torchrun --nproc_per_node 2 -m image_gen.train_mae --config-name mae_smoke      # DDP, gloo on CPU

Writes runs/<run_name>/mae.safetensors (weights + config in its metadata), metrics.jsonl and
train_state.safetensors (exact resume, no pickle). Distributed: every rank draws the whole global batch's
randomness (indices, flips, masks) from the same generator and reconstructs its rows ``rank*grad_accum ...``
in ``grad_accum`` micro-batches; the loss is normalised by the *global* count of hidden pixels, so W ranks x
grad_accum A equal one process with the same batch_size (up to float summation order), and a checkpoint
resumes on any world size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm import tqdm

from drifting_policy.trainer import MetricsLogger
from image_gen.data import DEFAULT_ROOT, load_pixels
from image_gen.distributed import DistInfo, init_distributed, mean_metrics, split_groups, wrap_ddp
from image_gen.models.mae import MAE, MAEConfig
from image_gen.utils import (
    atomic_save_weights,
    autocast,
    load_train_state,
    load_weights,
    optimizer_state_dict,
    optimizer_tensors,
    pick_device,
    save_train_state,
    warmup_cosine,
    with_prefix,
)

STATE_FILE = "train_state.safetensors"  # the resume state, as image-gen-train writes it


@dataclass
class MAETrainConfig:
    run_name: str = "mae"
    out_dir: str = "runs"
    mae: MAEConfig = field(default_factory=MAEConfig)
    data_root: str = DEFAULT_ROOT
    limit_per_class: int | None = None  # None: all 6000 train images per class
    steps: int = 1000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    seed: int = 0
    device: str = "auto"
    num_threads: int = 1  # torch.set_num_threads in main(), not in train_mae
    log_every: int = 50
    checkpoint_every: int = 500  # train_state.safetensors for an exact resume (also written at the end)
    resume: bool = True
    grad_accum: int = 1  # micro-batches per rank; batch_size must split into world_size * grad_accum

    def __post_init__(self):
        if isinstance(self.mae, dict):
            self.mae = MAEConfig(**self.mae)
        if self.steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError(
                f"steps={self.steps}, batch_size={self.batch_size}, grad_accum={self.grad_accum}; "
                "expected all >= 1"
            )

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.run_name


def save_mae(model: MAE, path: Path, extra: dict | None = None) -> None:
    atomic_save_weights(
        model.state_dict(), path, {"mae_config": dataclasses.asdict(model.config), **(extra or {})}
    )


def load_mae(path: str | Path, device: torch.device | str = "cpu") -> MAE:
    """MAE from a safetensors file written by :func:`save_mae` (config in the metadata)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"MAE weights {path} not found; train them first with `image-gen-train-mae` "
            "(or point encoder_path at an existing mae.safetensors)"
        )
    weights, metadata = load_weights(path)
    model = MAE(MAEConfig(**metadata["mae_config"]))
    model.load_state_dict(weights)
    return model.to(device).eval()


class MaskedError(nn.Module):
    """DDP-wrappable masked reconstruction: sum of squared errors over the hidden pixels of x [b, C, H, W]."""

    def __init__(self, mae: MAE):
        super().__init__()
        self.mae = mae

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        recon = self.mae.reconstruct(x * (1.0 - mask))  # hidden pixels are zeroed at the input
        return ((recon.float() - x.float()).square() * mask).sum()


def mae_step(
    model: MAE,
    wrapped: nn.Module,
    images: Tensor,
    config: MAETrainConfig,
    generator,
    info: DistInfo,
    device: torch.device,
) -> Tensor:
    """Forward/backward of one global batch (gradients left in ``model``); returns the global loss."""
    index = torch.randint(images.shape[0], (config.batch_size,), generator=generator)
    batch = images[index].to(device)  # [B, 1, 32, 32], the whole global batch on every rank
    flip = torch.rand(config.batch_size, generator=generator) < 0.5  # horizontal flips
    batch[flip.to(device)] = batch[flip.to(device)].flip(-1)
    mask = model.random_mask(batch, generator)  # [B, 1, H, W], same draws as MAE.loss
    hidden = (mask.sum() * batch.shape[1]).clamp_min(1.0)  # global count: micro-batch losses add up
    slices = split_groups(config.batch_size, info, config.grad_accum, "batch_size")
    total = torch.zeros((), device=device)
    for i, rows in enumerate(slices):
        with autocast(device):
            # x world_size: DDP averages gradients over ranks, the global loss is their sum
            loss = wrapped(batch[rows], mask[rows]) / hidden * info.world_size
        sync = i == len(slices) - 1 or not info.distributed
        with contextlib.nullcontext() if sync else wrapped.no_sync():
            loss.backward()
        total += loss.detach()  # this rank's share x world_size: the mean over ranks is the global loss
    return total


def train_mae(config: MAETrainConfig, dist_info: DistInfo | None = None) -> dict[str, float]:
    """Masked-reconstruction pre-training; returns final metrics (train loss, held-out test loss).

    dist_info: None joins the process group torchrun describes (or runs alone without torchrun).
    """
    info = dist_info or init_distributed()
    device = info.device if config.device == "auto" and info.distributed else pick_device(config.device)
    run_dir = config.run_dir
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    images, _ = load_pixels("train", config.data_root, config.limit_per_class)
    test_images, _ = load_pixels("test", config.data_root, 50)
    # Initial weights draw from the global CPU RNG: seed it from config.seed on a fork, so the caller's RNG
    # is left as it was (no global state in library code) and the same seed gives the same weights.
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(config.seed)  # the CPU generator alone: networks start on CPU
        model = MAE(config.mae).to(device)
    wrapped = wrap_ddp(MaskedError(model), info)  # broadcasts rank 0's initial weights
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    logger, state_path = MetricsLogger(run_dir / "metrics.jsonl"), run_dir / STATE_FILE
    first = 0
    if config.resume and state_path.is_file():
        first = load_mae_state(state_path, model, optimizer, generator)
        if info.is_main:  # rows carry the 0-based index of their step: those after the checkpoint go
            logger.truncate_after(first - 1)
            print(f"resumed from {state_path} at step {first}")
    elif info.is_main:
        logger.path.unlink(missing_ok=True)
    info.barrier()
    start = time.time()
    metrics = {"train/loss": float("nan")}  # a run resumed at its last step trains no more
    for step in tqdm(range(first, config.steps), desc="mae", mininterval=5.0, disable=not info.is_main):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * warmup_cosine(step, config.warmup_steps, config.steps)
        optimizer.zero_grad(set_to_none=True)
        loss = mae_step(model, wrapped, images, config, generator, info, device)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        optimizer.step()
        metrics = mean_metrics({"train/loss": loss.item(), "train/grad_norm": float(grad_norm)}, info)
        if info.is_main and (step % config.log_every == 0 or step == config.steps - 1):
            rate = (step + 1 - first) / (time.time() - start)
            lr = optimizer.param_groups[0]["lr"]
            logger.log({**metrics, "train/lr": lr, "train/steps_per_sec": rate}, step)
        done = step + 1
        if info.is_main and (done % config.checkpoint_every == 0 or done == config.steps):
            save_mae_state(state_path, done, model, optimizer, generator)
    info.barrier()
    with torch.no_grad(), autocast(device):
        test_loss, _ = model.eval().loss(test_images.to(device), torch.Generator().manual_seed(10_000))
    result = {"train/loss": metrics["train/loss"], "val/masked_mse": test_loss.item(), "steps": config.steps}
    if info.is_main:
        logger.log(result, config.steps)
        save_mae(model.cpu(), run_dir / "mae.safetensors", {"result": result})
        print(f"MAE saved to {run_dir / 'mae.safetensors'}: {result}")
    info.barrier()
    return result


def save_mae_state(path: Path, step: int, model: MAE, optimizer, generator: torch.Generator) -> None:
    """Model, AdamW and the data/mask generator as one safetensors file (no pickle), written atomically."""
    tensors, optimizer_meta = optimizer_tensors(optimizer.state_dict())
    tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
    tensors["generator"] = generator.get_state()
    save_train_state((tensors, {"step": step, "optimizer": optimizer_meta}), path)


def load_mae_state(path: Path, model: MAE, optimizer, generator: torch.Generator) -> int:
    """Restore model, optimizer and data/mask generator from ``path``; returns the step to continue at."""
    tensors, meta = load_train_state(path)
    model.load_state_dict(with_prefix(tensors, "model."))
    optimizer.load_state_dict(optimizer_state_dict(tensors, meta["optimizer"]))
    generator.set_state(tensors["generator"])
    return int(meta["step"])


def main() -> None:
    from image_gen.utils import run_hydra_entry_point

    run_hydra_entry_point(MAETrainConfig, "mae_base", "mae_smoke", train_mae)


if __name__ == "__main__":
    main()

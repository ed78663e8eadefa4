"""``image-gen-train-mae``: pre-train the drift-loss feature encoder (ResNet-GN MAE) on Fashion-MNIST train.

    image-gen-train-mae --config-name mae_smoke          # configs/image_gen/mae_smoke.yaml
    image-gen-train-mae steps=2000 mae.width=32

Writes runs/<run_name>/mae.safetensors (weights + config in its metadata) and metrics.jsonl.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from image_gen.data import DEFAULT_ROOT, load_pixels
from image_gen.models.mae import MAE, MAEConfig
from image_gen.utils import (
    append_metrics,
    atomic_save_weights,
    autocast,
    load_weights,
    pick_device,
    warmup_cosine,
)


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
    num_threads: int = 1
    log_every: int = 50

    def __post_init__(self):
        if isinstance(self.mae, dict):
            self.mae = MAEConfig(**self.mae)
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps={self.steps}, batch_size={self.batch_size}; expected both >= 1")

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


def train_mae(config: MAETrainConfig) -> dict[str, float]:
    """Masked-reconstruction pre-training; returns final metrics (train loss, held-out test loss)."""
    torch.set_num_threads(config.num_threads)
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    images, _ = load_pixels("train", config.data_root, config.limit_per_class)
    test_images, _ = load_pixels("test", config.data_root, 50)
    model = MAE(config.mae).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    metrics_path = run_dir / "metrics.jsonl"
    start = time.time()
    for step in tqdm(range(config.steps), desc="mae", mininterval=5.0):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * warmup_cosine(step, config.warmup_steps, config.steps)
        index = torch.randint(images.shape[0], (config.batch_size,), generator=generator)
        batch = images[index].to(device)
        flip = torch.rand(config.batch_size, generator=generator) < 0.5  # horizontal flips
        batch[flip.to(device)] = batch[flip.to(device)].flip(-1)
        with autocast(device):
            loss, _ = model.loss(batch, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
        optimizer.step()
        if step % config.log_every == 0 or step == config.steps - 1:
            append_metrics(
                metrics_path,
                {
                    "step": step,
                    "train/loss": loss.item(),
                    "train/grad_norm": grad_norm,
                    "train/lr": optimizer.param_groups[0]["lr"],
                    "train/steps_per_sec": (step + 1) / (time.time() - start),
                },
            )
    with torch.no_grad(), autocast(device):
        test_loss, _ = model.eval().loss(test_images.to(device), torch.Generator().manual_seed(10_000))
    result = {"train/loss": loss.item(), "val/masked_mse": test_loss.item(), "steps": config.steps}
    append_metrics(metrics_path, {"step": config.steps, **result})
    save_mae(model.cpu(), run_dir / "mae.safetensors", {"result": result})
    print(f"MAE saved to {run_dir / 'mae.safetensors'}: {result}")
    return result


def main():
    import hydra
    from omegaconf import OmegaConf

    from image_gen.utils import register_base_config

    register_base_config("mae_base", MAETrainConfig)

    @hydra.main(config_path="../configs/image_gen", config_name="mae_smoke", version_base=None)
    def run(cfg):
        train_mae(MAETrainConfig(**OmegaConf.to_container(cfg, resolve=True)))

    run()


if __name__ == "__main__":
    main()

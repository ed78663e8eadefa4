"""ImageNet MAE pre-training recipes (Table 8's feature-encoder row, method.md section 7) and their dry run.

Plain YAML (``configs/image_gen/imagenet_mae_*.yaml``) read into :class:`MAERecipe`; printed by
``image-gen-dry-run``. The Fashion-MNIST trainer is ``image-gen-train-mae`` (objective=mae); these recipes
record the ImageNet schedule: ResNet-34 layout with basic blocks, widths 256 / 640, AdamW lr 4e-3, batch
8192, EMA 0.9995, 4k warm-up, 192 or 1280 epochs; then classification fine-tuning
lambda * L_cls + (1 - lambda) * L_rec, a linear head, 3k iterations, lambda ramped 0 -> 0.1 over 1k.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from image_gen.models.mae import MAE, MAEConfig
from image_gen.recipes.base import DEFAULT_TFLOPS, IMAGENET_TRAIN_IMAGES, load_yaml_dataclass


@dataclass
class MAERecipe:
    name: str
    space: str = "latent"  # latent: 32x32x4 SD-VAE latents; pixel: 256^2 RGB patchified 8x8 -> 32x32x192
    mae: MAEConfig = field(default_factory=lambda: MAEConfig(in_channels=4, width=256, blocks=(3, 4, 6, 3)))
    input_size: int = 32
    batch_size: int = 8192
    lr: float = 4e-3
    weight_decay: float = 0.01
    warmup_steps: int = 4000
    steps: int = 30_000
    epochs: float = 192.0  # as stated in the paper
    ema_decay: float = 0.9995
    cls_finetune_steps: int = 0  # 0: no classification fine-tuning
    cls_lambda: float = 0.1  # final weight of the classification loss
    cls_lambda_ramp_steps: int = 1000

    def __post_init__(self):
        if isinstance(self.mae, dict):
            self.mae = MAEConfig(**self.mae)
        if self.space not in ("latent", "pixel"):
            raise ValueError(f"space={self.space!r}; expected 'latent' or 'pixel'")
        if not 0.0 <= self.cls_lambda <= 1.0:
            raise ValueError(f"cls_lambda={self.cls_lambda}; expected a weight in [0, 1]")
        if self.cls_finetune_steps and self.cls_lambda_ramp_steps > self.cls_finetune_steps:
            raise ValueError(
                f"cls_lambda_ramp_steps={self.cls_lambda_ramp_steps} > cls_finetune_steps="
                f"{self.cls_finetune_steps}; the ramp must end within the fine-tuning"
            )

    @classmethod
    def from_yaml(cls, path: str | Path) -> MAERecipe:
        return load_yaml_dataclass(cls, path, "MAE recipe; see configs/image_gen/imagenet_mae_*.yaml")


def mae_dry_run(recipe: MAERecipe, gpus: int = 64, tflops: float = DEFAULT_TFLOPS) -> dict[str, float]:
    """Parameters, FLOPs (FlopCounterMode on the meta device), epochs and GPU-hours of the recipe."""
    from torch.utils.flop_counter import FlopCounterMode

    if gpus < 1 or tflops <= 0:
        raise ValueError(f"gpus={gpus}, tflops={tflops}; expected gpus >= 1 and tflops > 0")
    with torch.device("meta"):
        model = MAE(recipe.mae)
        x = torch.zeros(1, recipe.mae.in_channels, recipe.input_size, recipe.input_size)
        with FlopCounterMode(display=False) as counter:
            model.reconstruct(x)
    fwd = float(counter.get_total_flops())
    steps = recipe.steps + recipe.cls_finetune_steps  # fine-tuning runs the same network (+ a linear head)
    total_flops = 3.0 * fwd * recipe.batch_size * steps
    gpu_hours = total_flops / (tflops * 1e12) / 3600.0
    return {
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "encoder_params_m": sum(p.numel() for p in model.encoder.parameters()) / 1e6,
        "fwd_gflops_per_image": fwd / 1e9,
        "epochs": recipe.steps * recipe.batch_size / IMAGENET_TRAIN_IMAGES,
        "total_pflops": total_flops / 1e15,
        "gpu_hours": gpu_hours,
        "wall_hours": gpu_hours / gpus,
        "gpus": float(gpus),
        "tflops": tflops,
    }


def format_mae_report(recipe: MAERecipe, r: dict[str, float]) -> str:
    cfg = recipe.mae
    finetune = (
        f"classifier fine-tune {recipe.cls_finetune_steps} steps, lambda 0 -> {recipe.cls_lambda:g} over "
        f"{recipe.cls_lambda_ramp_steps}"
        if recipe.cls_finetune_steps
        else "no classifier fine-tune"
    )
    return "\n".join(
        [
            f"== {recipe.name}: MAE w{cfg.width} {list(cfg.blocks)}, {recipe.space} "
            f"{cfg.in_channels}x{recipe.input_size}x{recipe.input_size}",
            f"params            {r['params_m']:.1f}M (encoder {r['encoder_params_m']:.1f}M)",
            f"fwd / image       {r['fwd_gflops_per_image']:.2f} GFLOP (encoder + U-Net decoder)",
            f"schedule          {recipe.steps} steps x {recipe.batch_size} = {r['epochs']:.0f} epochs "
            f"(paper: {recipe.epochs:g}); lr {recipe.lr:g}, warmup {recipe.warmup_steps}, "
            f"EMA {recipe.ema_decay}; {finetune}",
            f"compute           {r['total_pflops']:.0f} PFLOP = {r['gpu_hours']:.0f} GPU-hours at "
            f"{r['tflops']:g} TFLOP/s per GPU; {r['wall_hours']:.1f} h on {int(r['gpus'])} GPUs",
        ]
    )

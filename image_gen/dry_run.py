"""``image-gen-dry-run``: sizes, FLOPs, batch composition and GPU-hours of an ImageNet recipe (no training).

    image-gen-dry-run configs/image_gen/imagenet_b2_latent.yaml --gpus 64 --tflops 300
    image-gen-dry-run --all                      # every configs/image_gen/imagenet_*.yaml (paper Table 8)

The recipe YAMLs are plain files read into :class:`RecipeConfig` (not Hydra train configs:
``TrainConfig`` is the Fashion-MNIST trainer and caps N_c at its 10 classes). The model is built on the
``meta`` device, so even L/16 costs no memory.

FLOP estimate (generator only; the feature encoder and the drift field are not counted):
forward per image = 2 * (parameters applied per token) * tokens + 4 * tokens^2 * hidden * depth (QK^T and AV);
a training step is 3x forward (forward + backward) times the N_c * N_neg generated images.
Assumed sustained throughput: ``--tflops`` (default 200 TFLOP/s per GPU, bf16). That is what the issue's
reference point implies: a plain DiT-B/2 step runs ~1360 img/s forward+backward on one H100 at batch 256, and
this estimate gives ~147 GFLOP per B/2 image (fwd+bwd) -> ~200 TFLOP/s, about 20% of the H100's 989 TFLOP/s
dense bf16. The drifting step also runs the feature encoder on generated + real images, so real GPU-hours are
higher; treat the figure as a lower bound.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from image_gen.models.dit import DiT, DiTConfig

IMAGENET_TRAIN_IMAGES = 1_281_167  # ILSVRC-2012 train
DEFAULT_TFLOPS = 200.0  # assumed sustained bf16 TFLOP/s per GPU (see module docstring)
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "image_gen"
SPACES = ("latent", "pixel")


@dataclass
class RecipeConfig:
    """One column of the paper's Table 8 (method.md section 7)."""

    name: str
    space: str = "latent"
    model: DiTConfig = field(default_factory=DiTConfig)
    encoder: str = ""  # description of the feature encoder (weights come by path at train time)
    lr: float = 2e-4
    weight_decay: float = 0.01
    warmup_steps: int = 5000
    steps: int = 30_000
    epochs: float = 100.0  # as stated in the paper; steps * N_c * N_neg / 1,281,167 should match
    ema_decays: tuple[float, ...] = (0.999,)
    grad_clip: float = 2.0
    n_classes: int = 64  # N_c
    n_pos: int = 64  # N_pos
    n_neg: int = 64  # N_neg
    n_unc: int = 16  # N_unc
    queue_per_class: int = 128
    queue_global: int = 1000
    temperatures: tuple[float, ...] = (0.02, 0.05, 0.2)
    paper_params_m: float | None = None  # Table 8 "params" (millions), None where not stated

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = DiTConfig(**self.model)
        self.ema_decays = tuple(float(e) for e in self.ema_decays)
        self.temperatures = tuple(float(t) for t in self.temperatures)
        if self.space not in SPACES:
            raise ValueError(f"space={self.space!r}; expected one of {SPACES}")
        if not 1 <= self.n_classes <= self.model.num_classes:
            raise ValueError(
                f"n_classes={self.n_classes}; expected 1..model.num_classes={self.model.num_classes}"
            )
        if self.n_neg < 2:
            raise ValueError(
                f"n_neg={self.n_neg}; the self-masked field needs >= 2 generated samples per class"
            )
        if self.n_pos > self.queue_per_class or self.n_unc > self.queue_global:
            raise ValueError(
                f"n_pos={self.n_pos} > queue_per_class={self.queue_per_class} or n_unc={self.n_unc} > "
                f"queue_global={self.queue_global}; enlarge the queue"
            )

    @classmethod
    def from_yaml(cls, path: str | Path) -> RecipeConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"recipe {path} not found; see {CONFIG_DIR}/imagenet_*.yaml")
        return cls(**yaml.safe_load(path.read_text()))

    @property
    def batch(self) -> int:
        """Generated images per step, B = N_c * N_neg."""
        return self.n_classes * self.n_neg


def count_parameters(config: DiTConfig) -> tuple[int, int]:
    """(all parameters, parameters applied once per token: blocks, patch embedding, final layer)."""
    with torch.device("meta"):
        model = DiT(config)
    total = sum(p.numel() for p in model.parameters())
    per_token = sum(
        p.numel() for m in (model.blocks, model.patch_embed, model.final_layer) for p in m.parameters()
    )
    # adaLN modulation acts once per image (on c), not per token
    per_token -= sum(p.numel() for b in model.blocks for p in b.adaLN_modulation.parameters())
    per_token -= sum(p.numel() for p in model.final_layer.adaLN_modulation.parameters())
    return total, per_token


def forward_flops_per_image(config: DiTConfig, per_token_params: int) -> float:
    tokens = config.grid_size**2 + config.num_in_context
    return 2.0 * per_token_params * tokens + 4.0 * tokens**2 * config.hidden_size * config.depth


def dry_run(recipe: RecipeConfig, gpus: int = 64, tflops: float = DEFAULT_TFLOPS) -> dict[str, float]:
    """Everything the dry run prints, as a flat dict (FLOPs in raw units, time in hours)."""
    if gpus < 1 or tflops <= 0:
        raise ValueError(f"gpus={gpus}, tflops={tflops}; expected gpus >= 1 and tflops > 0")
    cfg = recipe.model
    total, per_token = count_parameters(cfg)
    fwd = forward_flops_per_image(cfg, per_token)
    step_flops = 3.0 * fwd * recipe.batch
    total_flops = step_flops * recipe.steps
    gpu_hours = total_flops / (tflops * 1e12) / 3600.0
    return {
        "params": float(total),
        "params_m": total / 1e6,
        "tokens": float(cfg.grid_size**2 + cfg.num_in_context),
        "patch_tokens": float(cfg.grid_size**2),
        "fwd_gflops_per_image": fwd / 1e9,
        "step_tflops": step_flops / 1e12,
        "batch": float(recipe.batch),
        "n_classes": float(recipe.n_classes),
        "n_pos": float(recipe.n_pos),
        "n_neg": float(recipe.n_neg),
        "n_unc": float(recipe.n_unc),
        "steps": float(recipe.steps),
        "epochs": recipe.steps * recipe.batch / IMAGENET_TRAIN_IMAGES,
        "total_pflops": total_flops / 1e15,
        "gpu_hours": gpu_hours,
        "wall_hours": gpu_hours / gpus,
        "gpus": float(gpus),
        "tflops": tflops,
    }


def format_report(recipe: RecipeConfig, r: dict[str, float]) -> str:
    cfg = recipe.model
    paper = f" (paper: {recipe.paper_params_m:g}M)" if recipe.paper_params_m else ""
    return "\n".join(
        [
            f"== {recipe.name}: {cfg.size}, {recipe.space} "
            f"{cfg.in_channels}x{cfg.input_size}x{cfg.input_size}",
            f"params            {r['params_m']:.1f}M{paper}",
            f"tokens / image    {int(r['tokens'])} "
            f"({int(r['patch_tokens'])} patch + {cfg.num_in_context} in-context)",
            f"batch             N_c={recipe.n_classes} N_pos={recipe.n_pos} N_neg={recipe.n_neg} "
            f"N_unc={recipe.n_unc}; B = N_c*N_neg = {recipe.batch} generated, "
            f"{recipe.n_classes * recipe.n_pos + recipe.n_unc} real",
            f"fwd / image       {r['fwd_gflops_per_image']:.1f} GFLOP; "
            f"fwd+bwd / step {r['step_tflops']:.1f} TFLOP "
            "(generator only)",
            f"schedule          {recipe.steps} steps = {r['epochs']:.0f} epochs (paper: {recipe.epochs:g}); "
            f"lr {recipe.lr:g}, wd {recipe.weight_decay:g}, warmup {recipe.warmup_steps}, "
            f"EMA {list(recipe.ema_decays)}",
            f"encoder           {recipe.encoder}",
            f"compute           {r['total_pflops']:.0f} PFLOP = {r['gpu_hours']:.0f} GPU-hours at an assumed "
            f"{r['tflops']:g} TFLOP/s sustained per GPU (generator only, a lower bound); "
            f"{r['wall_hours']:.1f} h on {int(r['gpus'])} GPUs",
        ]
    )


def recipe_paths() -> list[Path]:
    return sorted(CONFIG_DIR.glob("imagenet_*.yaml"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="image-gen-dry-run", description=__doc__.split("\n")[0])
    parser.add_argument("configs", nargs="*", help="recipe YAML files (configs/image_gen/imagenet_*.yaml)")
    parser.add_argument("--all", action="store_true", help="every configs/image_gen/imagenet_*.yaml")
    parser.add_argument("--gpus", type=int, default=64, help="GPUs in the cluster (default 64)")
    parser.add_argument(
        "--tflops", type=float, default=DEFAULT_TFLOPS, help="assumed sustained TFLOP/s per GPU (default 200)"
    )
    args = parser.parse_args(argv)
    paths = recipe_paths() if args.all else [Path(p) for p in args.configs]
    if not paths:
        parser.error("give recipe YAML paths or --all")
    for path in paths:
        recipe = RecipeConfig.from_yaml(path)
        print(format_report(recipe, dry_run(recipe, args.gpus, args.tflops)))


if __name__ == "__main__":
    main()

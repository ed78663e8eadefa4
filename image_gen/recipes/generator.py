"""Generator recipes of the paper's Table 8: sizes, FLOPs, batch composition and GPU-hours (no training).

Generator recipes may list their frozen ``feature_encoders`` (latent-MAE, pixel-MAE, ConvNeXt-V2); their
parameters and forward FLOPs are counted with torch's FlopCounterMode on the ``meta`` device, and a step adds
forward + input-gradient backward (~2x forward) on the N_c * N_neg generated images and one forward on the
N_c * N_pos + N_unc real ones. ``fsdp: true`` divides the weight/gradient/AdamW/EMA memory by the GPU count.
``imagenet_mae_*.yaml`` files are MAE pre-training recipes (image_gen.recipes.mae, with classifier
fine-tuning).

The recipe YAMLs are plain files read into :class:`RecipeConfig` (not hydra training configs: the drifting
objective's DriftingTrainConfig is the Fashion-MNIST trainer and caps N_c at its 10 classes). The model is
built on the ``meta`` device, so even L/16 costs no memory.

FLOP estimate of the generator (the drift field is not counted):
forward per image = 2 * (parameters applied per token) * tokens + 4 * tokens^2 * hidden * depth (QK^T and AV);
a training step is 3x forward (forward + backward) times the N_c * N_neg generated images.
Assumed sustained throughput: ``image-gen-dry-run --tflops`` (default 200 TFLOP/s per GPU, bf16). That is
what the issue's reference point implies: a plain DiT-B/2 step runs ~1360 img/s forward+backward on one H100
at batch 256, and this estimate gives ~147 GFLOP per B/2 image (fwd+bwd) -> ~200 TFLOP/s, about 20% of the
H100's 989 TFLOP/s dense bf16. The drifting step also runs the feature encoder on generated + real images, so
real GPU-hours are higher; treat the figure as a lower bound.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import torch

from image_gen.models.dit import DiT, DiTConfig
from image_gen.models.mae import MAE, MAEConfig
from image_gen.recipes.base import (
    BYTES_PER_PARAM,
    CONFIG_DIR,
    DEFAULT_TFLOPS,
    IMAGENET_TRAIN_IMAGES,
    load_yaml_dataclass,
)

ENCODER_KINDS = ("mae", "convnext")
SPACES = ("latent", "pixel")


@dataclass
class EncoderSpec:
    """A frozen feature encoder of the drift loss: a (latent or pixel) MAE or a timm ConvNeXt-V2."""

    kind: str = "mae"
    width: int = 256  # mae: channels of stage 1
    blocks: tuple[int, ...] = (3, 4, 6, 3)  # mae: ResNet-34 layout, basic blocks
    in_channels: int = 4  # mae: 4 SD-VAE latent channels, or 192 = 8x8 patchified 256^2 RGB
    input_size: int = 32  # mae: 32x32 latents or patchified pixels
    name: str = "convnextv2_base"  # convnext: timm model name
    image_size: int = 224  # convnext: resolution it runs at (images are resized to it)

    def __post_init__(self):
        self.blocks = tuple(int(b) for b in self.blocks)
        if self.kind not in ENCODER_KINDS:
            raise ValueError(f"feature_encoders kind={self.kind!r}; expected one of {ENCODER_KINDS}")

    def describe(self) -> str:
        if self.kind == "mae":
            return f"MAE w{self.width} {list(self.blocks)} on {self.in_channels}x{self.input_size}^2"
        return f"{self.name} at {self.image_size}^2"


def encoder_cost(spec: EncoderSpec) -> tuple[float, float] | None:
    """(parameters, forward FLOPs per image) on the meta device; None when timm is missing (ConvNeXt)."""
    return _encoder_cost(tuple(vars(spec).items()))


@functools.lru_cache(maxsize=32)
def _encoder_cost(fields: tuple) -> tuple[float, float] | None:
    """Cached by the spec's fields: counting a w640 MAE or a ConvNeXt-V2 base takes seconds."""
    from torch.utils.flop_counter import FlopCounterMode

    spec = EncoderSpec(**dict(fields))

    with torch.device("meta"):
        if spec.kind == "mae":
            config = MAEConfig(in_channels=spec.in_channels, width=spec.width, blocks=spec.blocks,
                               input_size=spec.input_size)
            encoder, x = (
                MAE(config).encoder,
                torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size),
            )
        else:
            try:
                from image_gen.models.convnext import ConvNeXtV2Features

                encoder = ConvNeXtV2Features(spec.name, input_size=spec.image_size)
            except ImportError:
                return None
            x = torch.zeros(1, 3, spec.image_size, spec.image_size)
        with FlopCounterMode(display=False) as counter:
            encoder(x)
    return float(sum(p.numel() for p in encoder.parameters())), float(counter.get_total_flops())


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
    feature_encoders: tuple[EncoderSpec, ...] = ()  # counted in FLOPs when given
    fsdp: bool = False  # shard weights/grads/optimizer over the GPUs (image_gen.distributed.wrap_fsdp)

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = DiTConfig(**self.model)
        self.feature_encoders = tuple(
            e if isinstance(e, EncoderSpec) else EncoderSpec(**e) for e in self.feature_encoders
        )
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
        return load_yaml_dataclass(cls, path, f"recipe; see {CONFIG_DIR}/imagenet_*.yaml")

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


def encoders_cost(recipe: RecipeConfig) -> tuple[dict[str, float], float]:
    """(report rows, FLOPs per step) of the frozen feature encoders; a step runs them forward + input-gradient
    backward on the generated images and forward on the real ones (ConvNeXt uncounted without timm)."""
    real = recipe.n_classes * recipe.n_pos + recipe.n_unc
    fwd, step, params, counted = 0.0, 0.0, 0.0, True
    for spec in recipe.feature_encoders:
        cost = encoder_cost(spec)
        if cost is None:
            counted = False
            continue
        params += cost[0]
        fwd += cost[1]
        step += cost[1] * (2.0 * recipe.batch + real)  # generated: fwd + input grad; real: fwd
    rows = {"encoder_params_m": params / 1e6, "encoder_fwd_gflops_per_image": fwd / 1e9,
            "encoder_step_tflops": step / 1e12, "encoders_counted": float(counted)}
    return rows, step


def dry_run(recipe: RecipeConfig, gpus: int = 64, tflops: float = DEFAULT_TFLOPS) -> dict[str, float]:
    """Everything the dry run prints, as a flat dict (FLOPs in raw units, time in hours)."""
    if gpus < 1 or tflops <= 0:
        raise ValueError(f"gpus={gpus}, tflops={tflops}; expected gpus >= 1 and tflops > 0")
    cfg = recipe.model
    total, per_token = count_parameters(cfg)
    fwd = forward_flops_per_image(cfg, per_token)
    step_flops = 3.0 * fwd * recipe.batch
    encoders, encoder_step = encoders_cost(recipe)
    total_flops = (step_flops + encoder_step) * recipe.steps
    gpu_hours = total_flops / (tflops * 1e12) / 3600.0
    state_bytes = total * (BYTES_PER_PARAM + 4 * len(recipe.ema_decays))
    return {
        **encoders,
        "train_state_gib_per_gpu": state_bytes / (gpus if recipe.fsdp else 1) / 2**30,
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
            *encoder_lines(recipe, r),
            f"train state       {r['train_state_gib_per_gpu']:.1f} GiB per GPU (weights, grads, AdamW, "
            f"{len(recipe.ema_decays)} EMA; activations not counted)"
            + (f", FSDP over {int(r['gpus'])} GPUs" if recipe.fsdp else ", DDP (replicated)"),
            f"compute           {r['total_pflops']:.0f} PFLOP = {r['gpu_hours']:.0f} GPU-hours at an assumed "
            f"{r['tflops']:g} TFLOP/s sustained per GPU ({scope(recipe, r)}, a lower bound); "
            f"{r['wall_hours']:.1f} h on {int(r['gpus'])} GPUs",
        ]
    )


def scope(recipe: RecipeConfig, r: dict[str, float]) -> str:
    if not recipe.feature_encoders:
        return "generator only"
    return (
        "generator + encoders" if r["encoders_counted"] else "generator + encoders except ConvNeXt (no timm)"
    )


def encoder_lines(recipe: RecipeConfig, r: dict[str, float]) -> list[str]:
    if not recipe.feature_encoders:
        return []
    names = " + ".join(spec.describe() for spec in recipe.feature_encoders)
    return [
        f"feature encoders  {names}: {r['encoder_params_m']:.1f}M params, "
        f"{r['encoder_fwd_gflops_per_image']:.1f} GFLOP fwd / image, "
        f"{r['encoder_step_tflops']:.1f} TFLOP / step"
    ]

"""The drifting objective (``image-gen-train``): a one-step DiT generator trained by feature-space drift
losses with learned CFG.

One step (paper Sec. 4 and A.6): N_c classes; per class an alpha from a power law, N_neg generated samples,
N_pos positives from the class queue; N_unc unconditional negatives from the global queue with weight
w = (alpha - 1)(N_neg - 1) / N_unc; features of all of them (features.py); one drift loss per feature set.
After the optimiser step the newest real samples enter the queue (image_gen.data.queue).

Latent space: ``feature_space=latent`` (default, the paper's) runs a latent-MAE on the generator's latents, so
no VAE decoder runs inside a step; ``feature_space=decoded`` decodes every generated, positive and negative
latent through the frozen VAE and runs a pixel MAE on the result (gradients flow through the decoder).

Distributed: the N_c class groups of a step are cut into W * grad_accum micro-batches, each its own drift
problem (the field's feature scale and drift normalisation are per micro-batch). Every rank draws the whole
step from the same generator and, by default, holds the same queue (shard_queues=False), so a checkpoint
resumes on any world size; shard_queues=True gives each rank its own data stream (seed (seed + 2) * W + rank)
and queue, like the paper's per-host banks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from drifting_policy.common.io import with_prefix
from image_gen.data.fmnist import NUM_CLASSES
from image_gen.data.latents import weights_hash
from image_gen.data.queue import DataStream, SampleQueue
from image_gen.distributed import rank_seed, split_groups
from image_gen.models.dit import DiT
from image_gen.objectives.features import FeatureConfig, cfg_neg_weight, extract_features, feature_drift_loss
from image_gen.objectives.generator import GRID_SEED, GeneratorObjective, GeneratorTrainConfig
from image_gen.runtime import autocast

FEATURE_SPACES = ("latent", "decoded")  # what the encoder reads in latent space: the latents, or VAE pixels


@dataclass
class DriftingTrainConfig(GeneratorTrainConfig):
    objective: str = "drifting"
    encoder_path: str | None = None  # mae.safetensors from image-gen-train-mae; None only for raw space
    features: FeatureConfig = field(default_factory=FeatureConfig)
    temperatures: tuple[float, ...] = (0.02, 0.05, 0.2)
    attraction: float = 1.0  # != repulsion breaks anti-symmetry (ablation only)
    repulsion: float = 1.0
    n_classes: int = 10  # N_c classes per step
    n_neg: int = 16  # N_neg generated samples per class
    n_pos: int = 16  # N_pos positives per class
    n_unc: int = 8  # N_unc unconditional negatives
    queue_per_class: int = 128
    queue_global: int = 1000
    push_per_step: int = 64
    alpha_min: float = 1.0
    alpha_max: float = 4.0
    alpha_power: float = 3.0  # p(alpha) ~ alpha^-power
    no_cfg_frac: float = 0.0  # share of classes trained at alpha = 1
    grid_alpha: float = 1.5  # CFG scale of the sample grids
    shard_queues: bool = False  # True: per-rank data stream and queue (not resumable on another world size)
    # space=latent: the encoder reads the latents ("latent", a latent-MAE) or their VAE decoding ("decoded",
    # a pixel MAE, the decoder run inside every step); pixel space has nothing to decode
    feature_space: str = "latent"

    def __post_init__(self):
        if isinstance(self.features, dict):
            self.features = FeatureConfig(**self.features)
        self.temperatures = tuple(float(t) for t in self.temperatures)
        super().__post_init__()
        if self.feature_space not in FEATURE_SPACES:
            raise ValueError(f"feature_space={self.feature_space!r}; expected one of {list(FEATURE_SPACES)}")
        if self.feature_space == "decoded" and self.space != "latent":
            raise ValueError("feature_space=decoded needs space=latent (pixel space has nothing to decode); "
                             "drop feature_space or set space=latent")
        if self.features.needs_encoder and not self.encoder_path:
            raise ValueError(
                f"features.kinds={list(self.features.kinds)} need encoder_path=<mae.safetensors> "
                "(image-gen-train-mae), or set features.kinds=[global] for raw space"
            )
        self._check_batch()

    def _check_batch(self) -> None:
        if not 1 <= self.n_classes <= NUM_CLASSES:
            raise ValueError(f"n_classes={self.n_classes}; expected 1..{NUM_CLASSES}")
        if self.n_neg < 2:
            raise ValueError(
                f"n_neg={self.n_neg}; the self-masked field needs >= 2 generated samples per class"
            )
        if self.n_pos > self.queue_per_class or self.n_unc > self.queue_global:
            raise ValueError(
                f"n_pos={self.n_pos} > queue_per_class={self.queue_per_class} or n_unc={self.n_unc} "
                f"> queue_global={self.queue_global}; enlarge the queue"
            )
        if self.n_classes % self.grad_accum:
            raise ValueError(f"n_classes={self.n_classes} not divisible by grad_accum={self.grad_accum}; "
                             "change one of them")
        if not 1.0 <= self.alpha_min <= self.alpha_max:
            raise ValueError(f"alpha range [{self.alpha_min}, {self.alpha_max}]; expected 1 <= min <= max")


def sample_alpha(n: int, config: DriftingTrainConfig, generator: torch.Generator) -> Tensor:
    """CFG scales [n] from p(alpha) ~ alpha^-power on [alpha_min, alpha_max] (inverse CDF), some set to 1."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    lo, hi, power = config.alpha_min, config.alpha_max, config.alpha_power
    if abs(power - 1.0) < 1e-9:
        alpha = lo * (hi / lo) ** u
    else:
        e = 1.0 - power
        alpha = (lo**e + u * (hi**e - lo**e)) ** (1.0 / e)
    no_cfg = torch.rand(n, generator=generator) < config.no_cfg_frac
    return alpha.float().masked_fill(no_cfg, 1.0)


class DriftingObjective(GeneratorObjective):
    """DiT generator, frozen feature encoder, sample queue and data stream (the queue and stream are part of
    the resume state)."""

    name = "drifting"
    generator_seed_offset = 1

    def __init__(self, config: DriftingTrainConfig, dist_info, device):
        super().__init__(config, dist_info, device)
        cfg = config
        self.micro = split_groups(cfg.n_classes, self.dist, cfg.grad_accum)  # this rank's class groups
        self._load_data()
        self.model = DiT(cfg.model).to(self.device)
        self.encoder = self._load_encoder()  # after _load_data: the shape checks need the samples
        stream_seed = cfg.seed + 2
        if cfg.shard_queues:
            stream_seed = rank_seed(stream_seed, self.dist.rank, self.dist.world_size)
        self.stream = DataStream(self.samples, self.labels, seed=stream_seed)
        sample_shape = tuple(self.samples.shape[1:])
        self.queue = SampleQueue(NUM_CLASSES, sample_shape, cfg.queue_per_class, cfg.queue_global)
        self._warm_queue()

    @property
    def decodes_features(self) -> bool:
        """True when every sample is decoded by the VAE before the feature encoder (feature_space=decoded)."""
        return self.config.space == "latent" and self.config.feature_space == "decoded"

    def _load_encoder(self):
        if not self.config.features.needs_encoder:
            return None
        from image_gen.models.mae import load_mae
        from image_gen.weight_files import read_metadata

        path = self.config.encoder_path
        mae = load_mae(path, self.device)
        self._check_encoder(mae.config.input_shape, read_metadata(path).get("vae_hash"))
        return mae.encoder.requires_grad_(False).eval()

    def _check_encoder(self, encoder_shape: tuple[int, ...], vae_hash: str | None) -> None:
        """One-line errors for an MAE that does not fit what this run feeds it (shape, or another VAE)."""
        cfg = self.config
        fed = self.pixel_shape if self.decodes_features else tuple(self.samples.shape[1:])
        if tuple(encoder_shape) != fed:
            what = "decoded pixels" if self.decodes_features else f"{cfg.space} samples"
            fix = ("point encoder_path at a latent-MAE (image-gen-train-mae --config-name mae_fmnist_latent "
                   "vae_path=<this run's VAE>) or set feature_space=decoded with a pixel MAE"
                   if cfg.space == "latent" and not self.decodes_features else
                   "point encoder_path at a pixel MAE (image-gen-train-mae --config-name mae_smoke)")
            raise ValueError(f"encoder_path={cfg.encoder_path} is an MAE for {_shape(encoder_shape)} inputs "
                             f"but feature_space={cfg.feature_space} feeds it {_shape(fed)} {what}; {fix}")
        if vae_hash and cfg.space == "latent" and not self.decodes_features:
            if vae_hash != weights_hash(self.vae):
                raise ValueError(f"encoder_path={cfg.encoder_path} is a latent-MAE of another VAE (hash "
                                 f"{vae_hash}, vae_path={cfg.vae_path} has {weights_hash(self.vae)}); "
                                 "pre-train it again with this vae_path")

    def _warm_queue(self) -> None:
        """Push real samples until every class ring holds n_pos samples (MoCo-style start)."""
        cfg = self.config
        while int(self.queue.class_count.min()) < cfg.n_pos or int(self.queue.global_count) < cfg.n_unc:
            self.queue.push(*self.stream.next(cfg.push_per_step))

    @property
    def images_per_step(self) -> int:
        return self.config.n_classes * self.config.n_neg  # generated images

    def features(self, x: Tensor) -> dict[str, Tensor]:
        """Feature sets of samples x [n, C, H, W]: the encoder reads x itself (pixels, or latents with a
        latent-MAE), or with feature_space=decoded x's pixels decoded by the frozen VAE."""
        pixels = self.vae.decode(x) if self.decodes_features else None
        return extract_features(self.encoder, x, self.config.features, encoder_input=pixels)

    def sample_batch(self, generator: torch.Generator) -> dict[str, Tensor | None]:
        cfg = self.config
        labels = torch.randperm(NUM_CLASSES, generator=generator)[: cfg.n_classes]  # [N_c]
        alpha = sample_alpha(cfg.n_classes, cfg, generator)  # [N_c]
        shape = (cfg.n_classes * cfg.n_neg, cfg.model.in_channels, cfg.model.input_size, cfg.model.input_size)
        noise = torch.randn(shape, generator=generator)  # [N_c * N_neg, C, H, W]
        style = self.model.sample_style(shape[0], generator)  # [N_c * N_neg, S]
        positives = self.queue.sample_class(labels, cfg.n_pos, generator)  # [N_c, N_pos, C, H, W]
        unconditional = self.queue.sample_unconditional(cfg.n_unc, generator)  # [N_unc, C, H, W]
        unc_feats = None  # shared by every micro-batch: computed once
        if cfg.n_unc:
            with torch.no_grad(), autocast(self.device):
                unc_feats = self.features(unconditional.to(self.device))
        return {"labels": labels, "alpha": alpha, "noise": noise, "style": style, "positives": positives,
                "unc_feats": unc_feats}

    def micro_batches(self, batch: dict) -> list[tuple[dict, slice]]:
        return [(batch, groups) for groups in self.micro]  # one drift problem each

    def compute_loss(self, micro: tuple[dict, slice], generator) -> tuple[Tensor, dict[str, float]]:
        cfg, device = self.config, self.device
        batch, groups = micro
        rows = slice(groups.start * cfg.n_neg, groups.stop * cfg.n_neg)
        model_labels = batch["labels"][groups].repeat_interleave(cfg.n_neg).to(device)  # [G * N_neg]
        model_alpha = batch["alpha"][groups].repeat_interleave(cfg.n_neg).to(device)  # [G * N_neg]
        with autocast(device):
            generated = self.wrapped(batch["noise"][rows].to(device), model_labels, model_alpha,
                                     batch["style"][rows].to(device))  # [G * N_neg, C, H, W]
            gen_feats = self.features(generated)
            with torch.no_grad():
                pos_feats = self.features(batch["positives"][groups].flatten(0, 1).to(device))
        alpha = batch["alpha"][groups]
        weight = cfg_neg_weight(alpha, cfg.n_neg, cfg.n_unc).to(device) if cfg.n_unc else None  # [G]
        loss, field_metrics = feature_drift_loss(
            gen_feats, pos_feats, batch["unc_feats"], groups.stop - groups.start, weight,
            temperatures=cfg.temperatures, attraction=cfg.attraction, repulsion=cfg.repulsion,
        )
        return loss / len(self.micro), summarise(field_metrics, cfg.temperatures)

    def after_step(self) -> None:
        self.queue.push(*self.stream.next(self.config.push_per_step))

    def state_dict(self) -> tuple[dict[str, Tensor], dict]:
        tensors = {f"queue.{k}": v for k, v in self.queue.state_dict().items()}
        stream = self.stream.state_dict()
        tensors.update({"stream.order": stream["order"], "stream.generator": stream["generator"]})
        return tensors, {"stream_position": int(stream["position"])}

    def load_state_dict(self, tensors: dict[str, Tensor], meta: dict) -> None:
        if self.config.shard_queues and self.dist.distributed:
            raise ValueError("shard_queues=True runs do not resume yet (per-rank queues are not saved); "
                             "start a new run_name")
        stream = {"order": tensors["stream.order"], "generator": tensors["stream.generator"],
                  "position": torch.tensor(meta["stream_position"])}
        self.stream.load_state_dict(stream)
        self.queue.load_state_dict(with_prefix(tensors, "queue."))

    @torch.no_grad()
    def sample_grid(self, model, per_class: int) -> Tensor:
        """Samples [10 * per_class, C, H, W] (pixels), class-major, fixed seed, at CFG scale grid_alpha."""
        labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class).to(self.device)
        x = model.generate(labels, self.config.grid_alpha, torch.Generator().manual_seed(GRID_SEED))
        return self.decode(x)

    def model_metadata(self) -> dict:
        cfg = self.config
        return {**super().model_metadata(), "encoder_path": cfg.encoder_path,
                "feature_space": cfg.feature_space}


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(size) for size in shape)


def summarise(field_metrics: dict[str, Tensor], temperatures: tuple[float, ...]) -> dict[str, float]:
    """Mean raw drift RMS per temperature over the feature sets, and the raw-space diagnostics."""
    out = {}
    for tau in temperatures:
        values = [v for k, v in field_metrics.items() if k.endswith(f"drift_rms/tau_{tau:g}")]
        out[f"drift_rms/tau_{tau:g}"] = float(torch.stack(values).mean())
    for key in ("global/nearest_pos_dist", "global/gen_spread", "global/feature_scale"):
        if key in field_metrics:
            out[key] = float(field_metrics[key])
    return out

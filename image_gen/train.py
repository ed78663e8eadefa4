"""``image-gen-train``: train the one-step DiT generator with feature-space drift losses and learned CFG.

    image-gen-train --config-name smoke                  # configs/image_gen/smoke.yaml
    image-gen-train --config-name fmnist_pixel steps=4000

One step (paper Sec. 4 and A.6): N_c classes; per class an alpha from a power law, N_neg generated samples,
N_pos positives from the class queue; N_unc unconditional negatives from the global queue with weight
w = (alpha - 1)(N_neg - 1) / N_unc; features of all of them; one drift loss per feature set; AdamW step; EMA.
Run folder: config.yaml, metrics.jsonl (rows after the checkpoint's step are dropped on resume),
model.safetensors (EMA + raw weights, config in metadata), train_state.safetensors (everything for an exact
resume: tensors, plus JSON metadata; no pickle), samples/step_*.png.

Distributed (``torchrun --nproc_per_node W``, gloo on CPU / nccl on GPU; image_gen/distributed.py): the N_c
class groups of a step are cut into W * grad_accum micro-batches, each its own drift problem (the field's
feature scale and drift normalisation are per micro-batch); rank r owns micro-batches r*grad_accum ... and DDP
averages the gradients. Every rank draws the whole step's randomness from the same generator and, by
default, holds the same queue (shard_queues=False), so W ranks x grad_accum A equals one process with
grad_accum W*A, and a checkpoint resumes on any world size. shard_queues=True gives each rank its own data
stream (seed (seed + 2) * W + rank) and queue, like the paper's per-host banks. Rank 0 alone logs, samples
and writes checkpoints. fsdp=True shards the generator's weights, gradients and AdamW state over the ranks
(FSDP2 ``fully_shard`` per DiT block, image_gen.distributed.wrap_fsdp) instead of DDP; the EMA stays a full
copy (its update gathers the shards) and checkpoints gather full tensors, so the files and the resume are
the same as with DDP or one process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from torch import Tensor
from tqdm import tqdm

from drifting_policy.ema import ratio_warmup_ema
from drifting_policy.trainer import MetricsLogger
from image_gen.data import DEFAULT_ROOT, NUM_CLASSES, load_pixels
from image_gen.distributed import (
    DistInfo,
    full_optimizer_state,
    full_state_dict,
    full_tensor,
    init_distributed,
    load_full_optimizer_state,
    load_full_state_dict,
    mean_metrics,
    rank_seed,
    split_groups,
    wrap_ddp,
    wrap_fsdp,
)
from image_gen.features import FeatureConfig, cfg_neg_weight, extract_features, feature_drift_loss
from image_gen.models.dit import DiT, DiTConfig
from image_gen.queue import DataStream, SampleQueue
from image_gen.utils import (
    atomic_save_weights,
    autocast,
    load_train_state,
    load_weights,
    optimizer_state_dict,
    optimizer_tensors,
    pick_device,
    save_grid,
    save_train_state,
    warmup_constant,
    with_prefix,
)

SPACES = ("pixel", "latent")
STATE_FILE = "train_state.safetensors"


@dataclass
class TrainConfig:
    run_name: str = "imagegen"
    out_dir: str = "runs"
    seed: int = 0
    device: str = "auto"
    num_threads: int = 1  # torch.set_num_threads in the entry point (main), not in the Trainer
    space: str = "pixel"
    vae_path: str | None = None  # latent space: a vae.safetensors from image-gen-train-vae
    encoder_path: str | None = None  # mae.safetensors from image-gen-train-mae; None only for raw space
    data_root: str = DEFAULT_ROOT
    limit_per_class: int | None = None
    model: DiTConfig = field(default_factory=DiTConfig)
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
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 2.0
    ema_decay: float = 0.995
    steps: int = 500
    log_every: int = 25
    sample_every: int = 250
    checkpoint_every: int = 250
    grid_alpha: float = 1.5
    resume: bool = True
    grad_accum: int = 1  # micro-batches per rank; n_classes must split into world_size * grad_accum
    shard_queues: bool = False  # True: per-rank data stream and queue (not resumable on another world size)
    fsdp: bool = False  # True: FSDP2 shards weights/grads/AdamW over the ranks instead of DDP (L-size models)

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = DiTConfig(**self.model)
        if isinstance(self.features, dict):
            self.features = FeatureConfig(**self.features)
        self.temperatures = tuple(float(t) for t in self.temperatures)
        if self.space not in SPACES:
            raise ValueError(f"space={self.space!r}; expected one of {SPACES}")
        if self.space == "latent" and not self.vae_path:
            raise ValueError(
                "space='latent' needs vae_path=<vae.safetensors>; train one with image-gen-train-vae"
            )
        if self.features.needs_encoder and not self.encoder_path:
            raise ValueError(
                f"features.kinds={list(self.features.kinds)} need encoder_path=<mae.safetensors> "
                "(image-gen-train-mae), or set features.kinds=[global] for raw space"
            )
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
            raise ValueError(f"n_classes={self.n_classes} not divisible by grad_accum={self.grad_accum}")
        if not 1.0 <= self.alpha_min <= self.alpha_max:
            raise ValueError(f"alpha range [{self.alpha_min}, {self.alpha_max}]; expected 1 <= min <= max")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.run_name


def sample_alpha(n: int, config: TrainConfig, generator: torch.Generator) -> Tensor:
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


class Trainer:
    """Holds the networks, the queue and every random stream, so a checkpoint restores a run exactly."""

    def __init__(self, config: TrainConfig, dist_info: DistInfo | None = None):
        self.config = cfg = config
        self.dist = dist_info or DistInfo()
        self.micro_batches = split_groups(cfg.n_classes, self.dist, cfg.grad_accum)
        self.device = pick_device(cfg.device)
        # Building networks draws initial weights from the global CPU RNG: seed it from cfg.seed on a fork,
        # so the caller's RNG is left as it was (no global state) and every rank and every run with this
        # seed starts from the same weights.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(cfg.seed)  # the CPU generator alone: networks start on CPU
            self.vae = self._load_vae()
            self.samples, self.labels = self._load_data()
            sample_shape = tuple(self.samples.shape[1:])
            if (cfg.model.in_channels, cfg.model.input_size) != (sample_shape[0], sample_shape[-1]):
                raise ValueError(
                    f"model.in_channels={cfg.model.in_channels}, model.input_size={cfg.model.input_size} "
                    f"but {cfg.space} samples are {list(sample_shape)}; set them to match"
                )
            self.model = DiT(cfg.model).to(self.device)
            # The EMA is a full (unsharded) copy, taken before FSDP shards the model; its update gathers.
            self.ema = ratio_warmup_ema(self.model, cfg.ema_decay)
            if cfg.fsdp:  # every rank built the same weights (same seed); fully_shard keeps its shard
                self.ddp = wrap_fsdp(self.model, self.dist)
            else:
                self.ddp = wrap_ddp(self.model, self.dist)  # broadcasts rank 0's initial weights
            self.encoder = self._load_encoder()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay
        )
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)
        stream_seed = cfg.seed + 2
        if cfg.shard_queues:
            stream_seed = rank_seed(stream_seed, self.dist.rank, self.dist.world_size)
        self.stream = DataStream(self.samples, self.labels, seed=stream_seed)
        self.queue = SampleQueue(NUM_CLASSES, sample_shape, cfg.queue_per_class, cfg.queue_global)
        self.step = 0
        self._warm_queue()

    def _load_vae(self):
        if self.config.space != "latent":
            return None
        from image_gen.models.vae import load_vae

        return load_vae(self.config.vae_path, self.device)

    def _load_data(self) -> tuple[Tensor, Tensor]:
        images, labels = load_pixels("train", self.config.data_root, self.config.limit_per_class)
        if self.vae is None:
            return images, labels
        from image_gen.data import cache_latents, latent_cache_path

        cache = latent_cache_path(self.config.vae_path, self.config.limit_per_class)
        if not self.dist.is_main:  # rank 0 writes the cache, the others read it
            self.dist.barrier()
        latents = cache_latents(self.vae, images.to(self.device), cache).cpu()
        if self.dist.is_main:
            self.dist.barrier()
        return latents, labels

    def _load_encoder(self):
        if not self.config.features.needs_encoder:
            return None
        from image_gen.train_mae import load_mae

        encoder = load_mae(self.config.encoder_path, self.device).encoder
        return encoder.requires_grad_(False).eval()

    def _warm_queue(self) -> None:
        """Push real samples until every class ring holds n_pos samples (MoCo-style start)."""
        while (
            int(self.queue.class_count.min()) < self.config.n_pos
            or int(self.queue.global_count) < self.config.n_unc
        ):
            self.queue.push(*self.stream.next(self.config.push_per_step))

    def features(self, x: Tensor) -> dict[str, Tensor]:
        """Feature sets of samples x [n, C, H, W] (pixels, or latents decoded by the frozen VAE)."""
        pixels = None if self.vae is None else self.vae.decode(x)
        return extract_features(self.encoder, x, self.config.features, encoder_input=pixels)

    def train_step(self) -> dict[str, float]:
        cfg, gen, device = self.config, self.generator, self.device
        labels = torch.randperm(NUM_CLASSES, generator=gen)[: cfg.n_classes]  # [N_c]
        alpha = sample_alpha(cfg.n_classes, cfg, gen)  # [N_c]
        shape = (cfg.n_classes * cfg.n_neg, cfg.model.in_channels, cfg.model.input_size, cfg.model.input_size)
        noise = torch.randn(shape, generator=gen)
        style = self.model.sample_style(shape[0], gen)
        positives = self.queue.sample_class(labels, cfg.n_pos, gen)  # [N_c, N_pos, C, H, W]
        unconditional = self.queue.sample_unconditional(cfg.n_unc, gen)  # [N_unc, C, H, W]
        unc_feats = None
        if cfg.n_unc:
            with torch.no_grad(), autocast(device):
                unc_feats = self.features(unconditional.to(device))
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for i, groups in enumerate(self.micro_batches):  # this rank's class groups, one drift problem each
            rows = slice(groups.start * cfg.n_neg, groups.stop * cfg.n_neg)
            n_groups = groups.stop - groups.start
            model_labels = labels[groups].repeat_interleave(cfg.n_neg).to(device)
            model_alpha = alpha[groups].repeat_interleave(cfg.n_neg).to(device)
            with autocast(device):
                generated = self.ddp(
                    noise[rows].to(device), model_labels, model_alpha, style[rows].to(device)
                )
                gen_feats = self.features(generated)
                with torch.no_grad():
                    pos_feats = self.features(positives[groups].flatten(0, 1).to(device))
            weight = cfg_neg_weight(alpha[groups], cfg.n_neg, cfg.n_unc).to(device) if cfg.n_unc else None
            loss, field_metrics = feature_drift_loss(
                gen_feats,
                pos_feats,
                unc_feats,
                n_groups,
                weight,
                temperatures=cfg.temperatures,
                attraction=cfg.attraction,
                repulsion=cfg.repulsion,
            )
            last = i == len(self.micro_batches) - 1
            with self._gradient_sync(last):
                (loss / len(self.micro_batches)).backward()  # DDP/FSDP average over ranks in the last one
            total += loss.detach() / len(self.micro_batches)
        loss = total
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        grad_norm = full_tensor(grad_norm)  # a DTensor under FSDP
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * warmup_constant(self.step, cfg.warmup_steps)
        self.optimizer.step()
        self.ema.update(self.model, self.step + 1)  # 1-based count of updates
        self.queue.push(*self.stream.next(cfg.push_per_step))
        self.step += 1
        return summarise(
            loss, grad_norm, self.optimizer.param_groups[0]["lr"], field_metrics, cfg.temperatures
        )

    def _gradient_sync(self, last: bool):
        """Context of a micro-batch's backward: gradients are averaged over ranks only in the last one."""
        if last or not self.dist.distributed:
            return contextlib.nullcontext()
        if self.config.fsdp:
            return _fsdp_no_sync(self.model)
        return self.ddp.no_sync()

    # --- checkpoints -------------------------------------------------------------------------------------
    def save(self) -> None:
        """Every rank calls it (FSDP gathers the shards); rank 0 writes."""
        run_dir = self.config.run_dir
        state = self.resume_state()  # full tensors
        if not self.dist.is_main:
            return
        weights = {k: v for k, v in state[0].items() if k.startswith(("ema.", "model."))}
        atomic_save_weights(
            weights,
            run_dir / "model.safetensors",
            {
                "dit_config": dataclasses.asdict(self.config.model),
                "step": self.step,
                "space": self.config.space,
                "vae_path": self.config.vae_path,
                "encoder_path": self.config.encoder_path,
            },
        )
        save_train_state(state, run_dir / STATE_FILE)

    def resume_state(self) -> tuple[dict[str, Tensor], dict]:
        """Everything an exact resume needs: named full tensors and JSON-able metadata (every rank calls
        it: FSDP shards are gathered)."""
        tensors = {f"model.{k}": v for k, v in full_state_dict(self.model).items()}
        tensors.update({f"ema.{k}": v for k, v in self.ema.model.state_dict().items()})
        tensors["generator"] = self.generator.get_state()
        tensors.update({f"queue.{k}": v for k, v in self.queue.state_dict().items()})
        stream = self.stream.state_dict()
        tensors.update({"stream.order": stream["order"], "stream.generator": stream["generator"]})
        optimizer, optimizer_meta = optimizer_tensors(full_optimizer_state(self.optimizer))
        tensors.update(optimizer)  # keys optimizer.<param index>.<name>
        meta = {"step": self.step, "stream_position": int(stream["position"]), "optimizer": optimizer_meta}
        return tensors, meta

    def load(self, path: Path) -> None:
        tensors, meta = load_train_state(path)
        groups: dict[str, dict[str, Tensor]] = {"model": {}, "ema": {}, "queue": {}, "stream": {}}
        for name, value in tensors.items():
            prefix, _, rest = name.partition(".")
            if prefix in groups:
                groups[prefix][rest] = value
        load_full_state_dict(self.model, groups["model"])  # sharded again under FSDP
        self.ema.model.load_state_dict(groups["ema"])
        load_full_optimizer_state(self.optimizer, optimizer_state_dict(tensors, meta["optimizer"]))
        self.generator.set_state(tensors["generator"])
        self.stream.load_state_dict({**groups["stream"], "position": torch.tensor(meta["stream_position"])})
        self.queue.load_state_dict(groups["queue"])
        self.step = int(meta["step"])

    @torch.no_grad()
    def sample_grid(self, per_class: int = 8) -> Tensor:
        """EMA samples [10 * per_class, C, H, W] (pixels), class-major, fixed seed."""
        labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class).to(self.device)
        x = self.ema.model.generate(labels, self.config.grid_alpha, torch.Generator().manual_seed(12345))
        return x if self.vae is None else self.vae.decode(x).float()


def summarise(
    loss: Tensor,
    grad_norm: Tensor,
    lr: float,
    field_metrics: dict[str, Tensor],
    temperatures: tuple[float, ...],
) -> dict[str, float]:
    """Flat metrics: loss, grad norm, lr, mean raw drift RMS per temperature, raw-space diagnostics."""
    out = {"train/loss": loss.item(), "train/grad_norm": float(grad_norm), "train/lr": lr}
    for tau in temperatures:
        values = [v for k, v in field_metrics.items() if k.endswith(f"drift_rms/tau_{tau:g}")]
        out[f"train/drift_rms/tau_{tau:g}"] = float(torch.stack(values).mean())
    for key in ("global/nearest_pos_dist", "global/gen_spread", "global/feature_scale"):
        if key in field_metrics:
            out[f"train/{key}"] = float(field_metrics[key])
    return out


@contextlib.contextmanager
def _fsdp_no_sync(model):
    """FSDP2's counterpart of DDP's no_sync: keep unreduced gradients for the next micro-batch."""
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def train(config: TrainConfig, dist_info: DistInfo | None = None) -> Trainer:
    """Run (or resume) training to ``config.steps``; returns the trainer (its EMA model samples).

    dist_info: None joins the process group torchrun describes (or runs alone without torchrun).
    """
    info = dist_info or init_distributed()
    run_dir = config.run_dir
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    info.barrier()
    trainer = Trainer(config, info)
    state_path = run_dir / STATE_FILE
    logger = MetricsLogger(run_dir / "metrics.jsonl")
    if config.resume and state_path.is_file():
        if config.shard_queues and info.distributed:
            raise ValueError("shard_queues=True runs do not resume yet (per-rank queues are not saved)")
        trainer.load(state_path)
        if info.is_main:  # rows logged after the checkpoint will be logged again by this run
            logger.truncate_after(trainer.step)
            print(f"resumed from {state_path} at step {trainer.step}")
    elif info.is_main:  # a fresh run starts a fresh log
        logger.path.unlink(missing_ok=True)
    if info.is_main:
        (run_dir / "config.yaml").write_text(
            yaml.safe_dump(to_plain(dataclasses.asdict(config)), sort_keys=False)
        )
    info.barrier()  # nobody starts before every rank has read the checkpoint
    images_per_step = config.n_classes * config.n_neg
    start, start_step = time.time(), trainer.step
    steps = range(trainer.step, config.steps)
    for _ in tqdm(steps, desc="image-gen-train", mininterval=5.0, disable=not info.is_main):
        metrics = mean_metrics(trainer.train_step(), info)
        step = trainer.step
        if step % config.checkpoint_every == 0 or step == config.steps:
            trainer.save()  # every rank (FSDP gathers shards); rank 0 writes
        if not info.is_main:
            continue
        if step % config.log_every == 0 or step == config.steps:
            rate = (step - start_step) / (time.time() - start)
            logger.log(
                {**metrics, "train/steps_per_sec": rate, "train/images_per_sec": rate * images_per_step},
                step,
            )
        if step % config.sample_every == 0 or step == config.steps:
            save_grid(trainer.sample_grid(), run_dir / "samples" / f"step_{step:06d}.png", nrow=8)
    return trainer


def to_plain(value):
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def load_generator(
    path: str | Path,
    device: torch.device | str = "cpu",
    use_ema: bool = True,
) -> tuple[DiT, dict]:
    """Generator from a run's model.safetensors; returns (model in eval mode, metadata)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"generator weights {path} not found; train with `image-gen-train` first")
    weights, metadata = load_weights(path)
    model = DiT(DiTConfig(**metadata["dit_config"]))
    model.load_state_dict(with_prefix(weights, "ema." if use_ema else "model."))
    return model.to(device).eval(), metadata


def main() -> None:
    from image_gen.utils import run_hydra_entry_point

    run_hydra_entry_point(TrainConfig, "train_base", "smoke", train)


if __name__ == "__main__":
    main()

"""``image-gen-train-flow``: the rectified-flow baseline (image_gen/flow.py) on the drifting generator's data.

    image-gen-train-flow --config-name flow_fmnist_latent          # configs/image_gen/flow_fmnist_latent.yaml
    image-gen-train-flow --config-name flow_fmnist_latent steps=2000 run_name=flow_latent_2k

Same DiT sizes, same pixel / latent data (and latent cache) as ``image-gen-train``, same AdamW (betas
0.9/0.95), warm-up-constant lr, gradient clip, EMA and run folder: config.yaml, metrics.jsonl,
model.safetensors (EMA + raw weights, ``model_kind: flow`` in the metadata), train_state.safetensors (exact
resume, no pickle),
samples/step_*.png. One process: the drifting trainer's DDP machinery is specific to its class-group
micro-batches; a flow step is a plain batch.
"""

from __future__ import annotations

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
from image_gen.data import DEFAULT_ROOT, NUM_CLASSES, cache_latents, latent_cache_path, load_pixels
from image_gen.flow import MODEL_KIND, FlowDiT, euler_sample, flow_loss
from image_gen.models.dit import DiTConfig
from image_gen.utils import (
    atomic_save_weights,
    autocast,
    load_train_state,
    optimizer_state_dict,
    optimizer_tensors,
    pick_device,
    save_grid,
    save_train_state,
    warmup_constant,
    with_prefix,
)

STATE_FILE = "train_state.safetensors"  # the resume state, as image-gen-train writes it


@dataclass
class FlowTrainConfig:
    run_name: str = "flow"
    out_dir: str = "runs"
    seed: int = 0
    device: str = "auto"
    num_threads: int = 1  # torch.set_num_threads in main(), not in the trainer
    space: str = "pixel"
    vae_path: str | None = None  # latent space: the vae.safetensors the drifting run used
    data_root: str = DEFAULT_ROOT
    limit_per_class: int | None = None
    model: DiTConfig = field(default_factory=DiTConfig)
    batch_size: int = 80  # real samples per step (drifting: n_classes * n_pos positives per step)
    label_drop: float = 0.1  # share of null-class labels, for CFG at sampling
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 2.0
    ema_decay: float = 0.995
    steps: int = 200
    log_every: int = 20
    sample_every: int = 100
    checkpoint_every: int = 100
    grid_nfe: int = 10
    grid_guidance: float = 1.0
    resume: bool = True

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = DiTConfig(**self.model)
        if self.space not in ("pixel", "latent"):
            raise ValueError(f"space={self.space!r}; expected 'pixel' or 'latent'")
        if self.space == "latent" and not self.vae_path:
            raise ValueError("space='latent' needs vae_path=<vae.safetensors> (image-gen-train-vae)")
        if not 0.0 <= self.label_drop < 1.0:
            raise ValueError(f"label_drop={self.label_drop}; expected a share in [0, 1)")
        if self.batch_size < 1 or self.steps < 1:
            raise ValueError(f"batch_size={self.batch_size}, steps={self.steps}; expected both >= 1")

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.run_name


class FlowTrainer:
    """Model, EMA, optimizer, data and the one random stream: a checkpoint restores the run exactly."""

    def __init__(self, config: FlowTrainConfig):
        self.config = cfg = config
        self.device = pick_device(cfg.device)
        # Initial weights draw from the global CPU RNG: seed it from cfg.seed on a fork, so the caller's RNG
        # is left as it was (no global state in library code) and the same seed gives the same weights.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(cfg.seed)  # the CPU generator alone: networks start on CPU
            self.vae = None
            if cfg.space == "latent":
                from image_gen.models.vae import load_vae

                self.vae = load_vae(cfg.vae_path, self.device)
            self.samples, self.labels = self._load_data()  # [N, C, H, W], [N]
            shape = tuple(self.samples.shape[1:])
            if (cfg.model.in_channels, cfg.model.input_size) != (shape[0], shape[-1]):
                raise ValueError(
                    f"model.in_channels={cfg.model.in_channels}, model.input_size={cfg.model.input_size} "
                    f"but {cfg.space} samples are {list(shape)}; set them to match"
                )
            self.model = FlowDiT(cfg.model).to(self.device)
        self.ema = ratio_warmup_ema(self.model, cfg.ema_decay)  # the drifting trainer's EMA
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay
        )
        self.generator = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0

    def _load_data(self) -> tuple[Tensor, Tensor]:
        cfg = self.config
        images, labels = load_pixels("train", cfg.data_root, cfg.limit_per_class)
        if self.vae is None:
            return images, labels
        # The same cache file image-gen-train writes for this VAE and limit: identical latents.
        cache = latent_cache_path(cfg.vae_path, cfg.limit_per_class)
        return cache_latents(self.vae, images.to(self.device), cache).cpu(), labels

    def train_step(self) -> dict[str, float]:
        cfg, gen = self.config, self.generator
        index = torch.randint(self.samples.shape[0], (cfg.batch_size,), generator=gen)
        data, labels = self.samples[index].to(self.device), self.labels[index].to(self.device)
        with autocast(self.device):
            loss = flow_loss(self.model, data, labels, gen, cfg.label_drop, self.model.null_class)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * warmup_constant(self.step, cfg.warmup_steps)
        self.optimizer.step()
        self.ema.update(self.model, self.step + 1)  # 1-based count of updates
        self.step += 1
        return {"train/loss": loss.item(), "train/grad_norm": float(grad_norm), "train/lr": group["lr"]}

    def save(self) -> None:
        run_dir, cfg = self.config.run_dir, self.config
        state = self.resume_state()
        weights = {k: v for k, v in state[0].items() if k.startswith(("ema.", "model."))}
        meta = {"model_kind": MODEL_KIND, "dit_config": dataclasses.asdict(cfg.model), "step": self.step}
        meta.update({"space": cfg.space, "vae_path": cfg.vae_path, "label_drop": cfg.label_drop})
        atomic_save_weights(weights, run_dir / "model.safetensors", meta)
        save_train_state(state, run_dir / STATE_FILE)

    def resume_state(self) -> tuple[dict[str, Tensor], dict]:
        """Everything an exact resume needs: named tensors and JSON-able metadata."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in self.ema.model.state_dict().items()})
        tensors["generator"] = self.generator.get_state()
        optimizer, optimizer_meta = optimizer_tensors(self.optimizer.state_dict())
        tensors.update(optimizer)
        return tensors, {"step": self.step, "optimizer": optimizer_meta}

    def load(self, path: Path) -> None:
        tensors, meta = load_train_state(path)
        for prefix, module in (("model.", self.model), ("ema.", self.ema.model)):
            module.load_state_dict(with_prefix(tensors, prefix))
        self.optimizer.load_state_dict(optimizer_state_dict(tensors, meta["optimizer"]))
        self.generator.set_state(tensors["generator"])
        self.step = int(meta["step"])

    @torch.no_grad()
    def sample_grid(self, per_class: int = 8) -> Tensor:
        """EMA samples [10 * per_class, C, H, W] in pixels, class-major, fixed seed."""
        cfg = self.config
        labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class).to(self.device)
        noise = torch.randn(
            len(labels), cfg.model.in_channels, cfg.model.input_size, cfg.model.input_size,
            generator=torch.Generator().manual_seed(12345),
        ).to(self.device)
        x = euler_sample(self.ema.model, noise, labels, cfg.grid_nfe, cfg.grid_guidance)
        return x if self.vae is None else self.vae.decode(x).float()


def train_flow(config: FlowTrainConfig) -> FlowTrainer:
    """Run (or resume) flow training to ``config.steps``; returns the trainer."""
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = FlowTrainer(config)
    state_path = run_dir / STATE_FILE
    logger = MetricsLogger(run_dir / "metrics.jsonl")
    if config.resume and state_path.is_file():
        trainer.load(state_path)
        logger.truncate_after(trainer.step)  # rows logged after the checkpoint will be logged again
        print(f"resumed from {state_path} at step {trainer.step}")
    else:
        logger.path.unlink(missing_ok=True)
    from image_gen.train import to_plain

    plain = yaml.safe_dump(to_plain(dataclasses.asdict(config)), sort_keys=False)
    (run_dir / "config.yaml").write_text(plain)
    start, start_step = time.time(), trainer.step
    for _ in tqdm(range(trainer.step, config.steps), desc="image-gen-train-flow", mininterval=5.0):
        metrics = trainer.train_step()
        step = trainer.step
        if step % config.log_every == 0 or step == config.steps:
            rate = (step - start_step) / (time.time() - start)
            logger.log({**metrics, "train/steps_per_sec": rate}, step)
        if step % config.sample_every == 0 or step == config.steps:
            save_grid(trainer.sample_grid(), run_dir / "samples" / f"step_{step:06d}.png", nrow=8)
        if step % config.checkpoint_every == 0 or step == config.steps:
            trainer.save()
    return trainer


def main() -> None:
    from image_gen.utils import run_hydra_entry_point

    run_hydra_entry_point(FlowTrainConfig, "flow_base", "flow_fmnist_latent", train_flow)


if __name__ == "__main__":
    main()

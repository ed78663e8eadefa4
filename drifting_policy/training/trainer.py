"""The one training loop, for every policy (drifting, diffusion, regression), usable without hydra.

    trainer = Trainer(policy, train_dataset, TrainConfig(max_steps=2000), run_dir="runs/x",
                      policy_spec=PolicySpec("drifting", options, shape_meta), runners={"eval/": runner})
    final_metrics = trainer.fit()

AdamW, linear warm-up then cosine decay, EMA of the weights (Diffusion Policy's schedule), gradient
clipping, validation loss, periodic closed-loop evaluation of the EMA policy, `metrics.jsonl`, atomic
checkpoints with exact resume. The budget is `max_steps` and/or `max_minutes` of training time (evaluation
and checkpointing excluded), so matched-wall-clock comparisons are possible; with `max_minutes` the cosine
follows whichever budget is closer to its end. A non-finite loss or gradient stops the run with
`NonFiniteLossError` before any weight is touched; the checkpoints on disk stay the last good ones.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate
from tqdm.auto import tqdm

from drifting_policy.common.ema import EMA
from drifting_policy.common.io import remove_stale_temporaries
from drifting_policy.common.metrics_log import MetricsLogger
from drifting_policy.common.precision import PRECISIONS, resolve_precision
from drifting_policy.common.schedules import lr_factor
from drifting_policy.training.checkpoint import (
    Checkpoint,
    capture_rng_state,
    load_checkpoint,
    resolve_path,
    restore_rng_state,
    save_checkpoint,
)


class NonFiniteLossError(RuntimeError):
    """The loss or gradient norm became NaN/Inf; the run stopped without applying the update."""


@dataclass
class TrainConfig:
    """Training loop settings (the `train` group of the hydra config)."""

    max_steps: int | None = 2000  # None: stop on max_minutes only
    max_minutes: float | None = None  # training time (evaluation and checkpoints excluded)
    batch_size: int = 256
    lr: float = 1e-3
    betas: tuple[float, float] = (0.95, 0.999)
    weight_decay: float = 1e-6
    warmup_steps: int = 500
    lr_schedule: str = "cosine"  # "cosine" | "constant" (both after the linear warm-up)
    grad_clip: float | None = 1.0  # max gradient norm; None: no clipping (the norm is still logged)
    ema: bool = True
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    ema_min_decay: float = 0.0
    ema_update_after_step: int = 0
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = 1  # torch.set_num_threads in entry points; None: leave torch's default
    # "bf16": the training forward pass under bfloat16 autocast; the drift field, losses, weights, optimiser
    # and EMA stay float32, evaluation runs in float32. "auto": bf16 where the hardware has native bf16
    # (drifting_policy/common/precision.py), else fp32.
    precision: str = "fp32"  # "fp32" | "bf16" | "auto"
    num_workers: int = 0
    log_every: int = 50
    val_every: int | None = 500
    val_batches: int = 4
    eval_every: int | None = None  # closed-loop evaluation every N steps; None: only at the end
    eval_at_end: bool = True
    checkpoint_every: int = 500  # rewrites checkpoints/latest (resumable: optimizer and RNG state included)
    save_every: int | None = None  # keeps checkpoints/step_<N> (weights + EMA only); None: only latest
    resume: bool = True  # continue from run_dir/checkpoints/latest when it exists
    progress: bool = True

    def __post_init__(self):
        if self.max_steps is None and self.max_minutes is None:
            raise ValueError("TrainConfig needs a budget: set max_steps and/or max_minutes")
        if self.precision not in PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"TrainConfig.lr_schedule must be 'cosine' or 'constant', got "
                             f"{self.lr_schedule!r}")
        for name in ("batch_size", "log_every", "checkpoint_every", "val_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ema_min_decay <= self.ema_max_decay <= 1.0:
            raise ValueError(f"TrainConfig needs 0 <= ema_min_decay <= ema_max_decay <= 1, got "
                             f"{self.ema_min_decay} and {self.ema_max_decay}")
        self.betas = tuple(self.betas)


@dataclass
class PolicySpec:
    """What `drifting_policy.policy.build_policy` needs to rebuild the policy from a checkpoint."""

    name: str
    options: dict[str, Any]
    shape_meta: dict[str, Any]


class IndexBatches:
    """Endless batches of dataset indices, a fresh permutation per epoch from (seed, epoch): the batch of any
    step is known without replaying the run, which is what makes resume exact."""

    def __init__(self, n_items: int, batch_size: int, seed: int, start_step: int = 0):
        if n_items < batch_size:
            raise ValueError(f"train.batch_size={batch_size} but the dataset has {n_items} windows; lower "
                             f"train.batch_size or add data")
        self.n_items, self.batch_size, self.seed, self.start_step = n_items, batch_size, seed, start_step
        self.per_epoch = n_items // batch_size  # the last partial batch of an epoch is dropped

    def __iter__(self):
        epoch, offset = divmod(self.start_step, self.per_epoch)
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.n_items)
            for k in range(offset, self.per_epoch):
                yield order[k * self.batch_size:(k + 1) * self.batch_size].tolist()
            epoch, offset = epoch + 1, 0


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


class Trainer:
    """Trains `policy` on `train_dataset` (items: `{"obs": {key: [obs_horizon, ...]}, "action": [...]}`)."""

    def __init__(self, policy: torch.nn.Module, train_dataset, config: TrainConfig, run_dir: str | Path,
                 policy_spec: PolicySpec, val_dataset=None, runners: dict[str, Any] | None = None,
                 run_config: dict[str, Any] | None = None, wandb_options: dict[str, Any] | None = None):
        self.config = config
        self.device = torch.device(config.device)
        self.policy = policy.to(self.device)
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self.runners = dict(runners or {})
        self.spec = policy_spec
        self.run_config = run_config if run_config is not None else {"train": asdict(config)}
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.optimizer = torch.optim.AdamW(self.policy.parameters(), lr=config.lr, betas=config.betas,
                                           weight_decay=config.weight_decay)
        self.ema = EMA(self.policy, config.ema_power, config.ema_max_decay, config.ema_min_decay,
                       config.ema_update_after_step) if config.ema else None
        self.generator = torch.Generator(device=self.device)  # noise of compute_loss (saved in checkpoints)
        self.precision = resolve_precision(config.precision, self.device)  # "auto" -> this machine's choice
        self.step, self.train_seconds, self.wall_seconds = 0, 0.0, 0.0
        self.warmup_end_progress = 0.0  # budget fraction used when warm-up ended (the cosine's start)
        self._done_at: dict[str, int] = {}  # kind of periodic work -> step it last ran at
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = MetricsLogger(self.run_dir / "metrics.jsonl", wandb_options, self.run_config)

    @property
    def eval_policy(self) -> torch.nn.Module:
        return self.ema.model if self.ema is not None else self.policy

    @property
    def samples_seen(self) -> int:
        return self.step * self.config.batch_size

    def progress(self) -> float:
        """Fraction of the budget used: the larger of the step and the time fractions."""
        cfg = self.config
        fractions = [self.step / cfg.max_steps] if cfg.max_steps else []
        if cfg.max_minutes:
            fractions.append(self.train_seconds / (60.0 * cfg.max_minutes))
        return max(fractions)

    def fit(self) -> dict[str, float]:
        """Run until the budget is spent; returns the last logged metrics of each kind."""
        self._start()
        cfg = self.config
        loader = DataLoader(self.train_dataset, collate_fn=default_collate, num_workers=cfg.num_workers,
                            batch_sampler=IndexBatches(len(self.train_dataset), cfg.batch_size, cfg.seed,
                                                       self.step))
        with torch.random.fork_rng(devices=[]):  # the iterator draws a seed: keep the global RNG as resumed
            batches = iter(loader)
        bar = tqdm(total=cfg.max_steps, initial=self.step, disable=not cfg.progress, mininterval=2.0,
                   dynamic_ncols=True)
        last: dict[str, float] = {}
        window: dict[str, float] = {}
        window_seconds, window_steps = 0.0, 0  # training time only: evaluation does not dilute steps/s
        wall_start = time.perf_counter() - self.wall_seconds
        try:
            while self.progress() < 1.0:
                tic = time.perf_counter()
                metrics = self._train_step(to_device(next(batches), self.device))
                window_seconds += time.perf_counter() - tic
                self.train_seconds += time.perf_counter() - tic
                self.step += 1
                window_steps += 1
                for key, value in metrics.items():
                    window[key] = window.get(key, 0.0) + value
                bar.update(1)
                if self.step % cfg.log_every == 0:
                    self.wall_seconds = time.perf_counter() - wall_start
                    row = self._train_row(window, window_steps, window_seconds)
                    bar.set_postfix(loss=f"{row['train/loss']:.4g}")
                    self.logger.log(row, self.step)
                    last.update(row)
                    window, window_seconds, window_steps = {}, 0.0, 0
                last.update(self._periodic(final=False))
                self.wall_seconds = time.perf_counter() - wall_start
            last.update(self._periodic(final=True))
        finally:
            bar.close()
            self.logger.close()
        return last

    def _start(self) -> None:
        latest = self.ckpt_dir / "latest.safetensors"
        if latest.exists():
            if not self.config.resume:
                raise FileExistsError(f"{latest} exists and train.resume=false; pick a new run_dir or set "
                                      f"train.resume=true to continue that run")
            self.load_state(latest)
            self.logger.truncate_after(self.step)
            remove_stale_temporaries(self.ckpt_dir)  # of writes a killed run left unfinished
            self._done_at = dict.fromkeys(("val", "eval", "save", "latest"), self.step)
        else:
            self.generator.manual_seed(self.config.seed)
            torch.manual_seed(self.config.seed)  # for any randomness a policy draws outside `generator`

    def _train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        cfg = self.config
        self.policy.train()
        if self.step == cfg.warmup_steps:
            self.warmup_end_progress = self.progress()
        lr = cfg.lr * lr_factor(self.step, self.progress(), cfg.warmup_steps, cfg.lr_schedule,
                                self.warmup_end_progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            loss, metrics = self.policy.compute_loss(batch, generator=self.generator)
        self._check_finite("loss", loss, metrics)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = cfg.grad_clip if cfg.grad_clip is not None else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), max_norm)
        self._check_finite("gradient norm", grad_norm, metrics)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.policy, self.step + 1)
        out = {key: float(value) for key, value in metrics.items()}
        out.update(loss=float(loss.detach()), grad_norm=float(grad_norm), lr=lr)
        return out

    def _check_finite(self, what: str, value: torch.Tensor, metrics: dict[str, Any]) -> None:
        if bool(torch.isfinite(value).all()):
            return
        latest = self.ckpt_dir / "latest.safetensors"
        where = f"the last good checkpoint is {latest}" if latest.exists() else "no checkpoint written yet"
        shown = {key: float(v) for key, v in metrics.items()}
        raise NonFiniteLossError(f"non-finite {what} ({float(value.detach())}) at step {self.step + 1}; "
                                 f"metrics {shown}. "
                                 f"Stopped without applying the update; {where}. Lower train.lr, set "
                                 f"train.grad_clip, or check the data for NaNs before resuming")

    def _train_row(self, window: dict[str, float], steps: int, seconds: float) -> dict[str, float]:
        row = {f"train/{key}": value / steps for key, value in window.items()}
        row["train/lr"] = self.optimizer.param_groups[0]["lr"]
        row["train/steps_per_s"] = steps / max(seconds, 1e-9)
        return {**row, **self._clock_row()}

    def _clock_row(self) -> dict[str, float]:
        return {"train/samples_seen": float(self.samples_seen),
                "train/epochs": self.samples_seen / len(self.train_dataset),
                "train/minutes": self.train_seconds / 60.0,
                "train/wall_minutes": self.wall_seconds / 60.0}

    def _periodic(self, final: bool) -> dict[str, float]:
        """Validation, evaluation and checkpoints due at this step (all of them at the end of the run)."""
        cfg = self.config
        out: dict[str, float] = {}
        if self.val_dataset is not None and self._due("val", cfg.val_every, final):
            out.update(self._log(self.validate()))
        if self.runners and self._due("eval", cfg.eval_every, final and cfg.eval_at_end):
            out.update(self._log(self.evaluate()))
        if self._due("save", cfg.save_every, final and bool(cfg.save_every)):
            self.save(self.ckpt_dir / f"step_{self.step:07d}", resumable=False)
        if self._due("latest", cfg.checkpoint_every, final):
            self.save(self.ckpt_dir / "latest")
        return out

    def _due(self, kind: str, every: int | None, final: bool) -> bool:
        """True when `kind` is due at this step (every N steps, or at the end) and was not done at it yet."""
        due = (bool(every) and self.step % every == 0) or final
        if not due or self._done_at.get(kind) == self.step:
            return False
        self._done_at[kind] = self.step
        return True

    def _log(self, metrics: dict[str, float]) -> dict[str, float]:
        row = {**metrics, **self._clock_row()}
        self.logger.log(row, self.step)
        return metrics

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss of the EMA policy over the first `val_batches` validation batches (fixed noise seed)."""
        cfg = self.config
        policy = self.eval_policy
        loader = DataLoader(self.val_dataset, batch_size=cfg.batch_size, shuffle=False, drop_last=False)
        totals: dict[str, float] = {}
        n = 0
        generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        was_training = policy.training
        policy.eval()  # with ema=false this is the live policy: no random crops in validation
        with torch.random.fork_rng(devices=[]):
            for batch, _ in zip(loader, range(cfg.val_batches), strict=False):
                loss, metrics = policy.compute_loss(to_device(batch, self.device), generator=generator)
                for key, value in {"loss": loss, **metrics}.items():
                    totals[key] = totals.get(key, 0.0) + float(value)
                n += 1
        policy.train(was_training)
        return {f"val/{key}": value / max(n, 1) for key, value in totals.items()}

    def evaluate(self) -> dict[str, float]:
        """Closed-loop evaluation of the EMA policy with every runner; writes eval/step_<N>.json."""
        out: dict[str, float] = {}
        summary: dict[str, Any] = {"step": self.step, "train_minutes": self.train_seconds / 60.0}
        with torch.random.fork_rng(devices=[]):
            for prefix, runner in self.runners.items():
                video_dir = self.run_dir / "videos" / f"step_{self.step:07d}" / prefix.strip("/")
                result = runner.run_episodes(self.eval_policy, video_dir=video_dir)
                out.update(result.metrics(prefix, n_bootstrap=runner.config.n_bootstrap))
                summary[prefix.strip("/")] = result.to_json(prefix)
        path = self.run_dir / "eval" / f"step_{self.step:07d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1))
        return out

    def save(self, path: Path, resumable: bool = True) -> Path:
        """Write a checkpoint; `resumable=False` (periodic step_N files) keeps weights and EMA only, half the
        size: runs resume from `latest`, which always holds optimizer and RNG state too."""
        state = {"step": self.step, "samples_seen": self.samples_seen, "train_seconds": self.train_seconds,
                 "wall_seconds": self.wall_seconds, "warmup_end_progress": self.warmup_end_progress}
        ckpt = Checkpoint(policy_name=self.spec.name, policy_options=self.spec.options,
                          shape_meta=self.spec.shape_meta, policy_state=self.policy.state_dict(),
                          ema_state=self.ema.model.state_dict() if self.ema is not None else None,
                          optimizer_state=self.optimizer.state_dict() if resumable else None,
                          rng_state={**capture_rng_state(), "generator": self.generator.get_state()}
                          if resumable else {},
                          train_state=state, config=self.run_config)
        return save_checkpoint(path, ckpt)

    def load_state(self, path: str | Path) -> None:
        """Restore weights, EMA, optimizer, RNG and counters: the run continues exactly where it was saved."""
        ckpt = load_checkpoint(resolve_path(path))
        if ckpt.optimizer_state is None or "generator" not in ckpt.rng_state:
            raise ValueError(f"{path} holds weights only (a periodic step_<N> checkpoint); resume from "
                             f"checkpoints/latest, which keeps the optimizer and RNG state")
        self.policy.load_state_dict(ckpt.policy_state)
        if self.ema is not None and ckpt.ema_state is not None:
            self.ema.model.load_state_dict(ckpt.ema_state)
        self.optimizer.load_state_dict(ckpt.optimizer_state)
        restore_rng_state(ckpt.rng_state)
        self.generator.set_state(ckpt.rng_state["generator"])
        self.step = int(ckpt.train_state["step"])
        self.train_seconds = float(ckpt.train_state["train_seconds"])
        self.wall_seconds = float(ckpt.train_state["wall_seconds"])
        self.warmup_end_progress = float(ckpt.train_state["warmup_end_progress"])

"""The one image training loop, for every objective (drifting, flow, mae, vae, evaluator); no hydra needed.

    trainer = train(DriftingTrainConfig(encoder_path="runs/mae_smoke/mae.safetensors", max_steps=200))
    trainer.ema.model.generate(labels, alpha)

Run folder ``<out_dir>/<run_name>`` (image_gen.run_folder): config.yaml, metrics.jsonl (rows after the
checkpoint's step are dropped on resume), train_state.safetensors (exact resume, no pickle), the objective's
weight file and samples/step_*.png. The run-folder rule (image_gen.run_folder.check_image_run_folder) is
checked before anything is written: an existing run is continued only with resume=true and its own settings,
a run already at its budget is left as it is, and a fresh run that fails before its first checkpoint leaves
no folder. Every step's loss and gradient norm are checked before the update: a NaN/Inf stops the run with
:class:`NonFiniteLossError`, the files on disk staying those of the last good checkpoint.

AdamW, linear warm-up then a constant or cosine schedule (drifting_policy.common.schedules), EMA of the
weights (drifting_policy.common.ema.ratio_warmup_ema), gradient clipping, gradient accumulation. Metrics rows
count steps from 1, like the policy trainer.

Distributed (``torchrun --nproc_per_node W``, gloo on CPU / nccl on GPU; image_gen.distributed): every rank
draws the whole step's randomness from the same generator, the objective cuts it into W * grad_accum
micro-batches and rank r trains on micro-batches r * grad_accum ...; DDP averages the gradients (fsdp=True:
FSDP2 shards weights, gradients and AdamW state instead; the EMA stays a full copy and checkpoints gather full
tensors). So W ranks x grad_accum A equal one process with grad_accum W * A, and a checkpoint resumes on any
world size. Rank 0 alone logs, samples and writes files.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from drifting_policy.common.ema import ratio_warmup_ema
from drifting_policy.common.io import (
    flatten_optimizer,
    remove_stale_temporaries,
    unflatten_optimizer,
    with_prefix,
)
from drifting_policy.common.metrics_log import MetricsLogger
from drifting_policy.common.run_folder import RunFolderGuard
from drifting_policy.common.schedules import lr_factor
from image_gen.distributed import (
    DistInfo,
    all_reduce_mean,
    full_optimizer_state,
    full_state_dict,
    full_tensor,
    init_distributed,
    load_full_optimizer_state,
    load_full_state_dict,
    mean_metrics,
)
from image_gen.objectives import objective_class
from image_gen.run_folder import (
    METRICS_FILE,
    STATE_FILE,
    check_image_run_folder,
    grid_path,
    kept_dir,
    save_grid,
    stored_config,
    write_config,
)
from image_gen.runtime import pick_device
from image_gen.training.config import ImageTrainConfig
from image_gen.training.state import load_train_state, save_train_state

GRID_PER_CLASS = 8  # samples per class (one row each) in samples/step_*.png


class NonFiniteLossError(RuntimeError, ValueError):
    """The loss or gradient norm became NaN/Inf; the run stopped without applying the update. A ValueError
    too, so that entry points report it in one line: the fix is a setting (lr, grad_clip)."""


class Trainer:
    """Holds the objective, the optimiser, the EMA and every random stream, so a checkpoint restores a run
    exactly."""

    def __init__(self, config: ImageTrainConfig, dist_info: DistInfo | None = None):
        self.config = cfg = config
        self.dist = dist_info or DistInfo()
        self.device = pick_device(cfg.device, self.dist)
        self.run_dir = cfg.run_dir
        build = objective_class(cfg.objective)
        if self.dist.distributed and not build.distributed:
            raise ValueError(f"objective={cfg.objective!r} trains in one process; run it without torchrun")
        # Networks draw initial weights from the global CPU RNG: seed it from cfg.seed on a fork, so the
        # caller's RNG is left as it was (no global state) and every rank and every run with this seed starts
        # from the same weights.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(cfg.seed)  # the CPU generator alone: networks start on CPU
            self.objective = build(cfg, self.dist, self.device)
        self.model = self.objective.model
        # The EMA is a full (unsharded) copy, taken before FSDP shards the model; its update gathers.
        self.ema = ratio_warmup_ema(self.model, cfg.ema_max_decay) if cfg.ema else None
        self.objective.wrap(cfg.fsdp)  # DDP broadcasts rank 0's initial weights
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, betas=cfg.betas,
                                           weight_decay=cfg.weight_decay)
        self.generator = torch.Generator().manual_seed(cfg.seed + self.objective.generator_seed_offset)
        self.max_steps = self.objective.max_steps()
        self.warmup_steps = min(100, self.max_steps // 10) if cfg.warmup_steps is None else cfg.warmup_steps
        # wall and CPU (user + sys of this process, all its threads) seconds spent in training steps alone
        self.step, self.train_seconds, self.train_cpu_seconds = 0, 0.0, 0.0
        self.saved_step: int | None = None  # step of the train state on disk (None: none written yet)
        self.logger: MetricsLogger | None = None
        self._window = [0, 0.0]  # steps and training seconds since the last logged row

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.ema.model if self.ema is not None else self.model

    # --- the loop ----------------------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Run (or resume) to the budget; returns the last step's metrics and the objective's final row ({}
        when the run folder already holds a run at its budget: nothing is trained or written then)."""
        resume_meta = check_image_run_folder(self.config, self.dist.world_size)  # every rank; writes nothing
        self.dist.barrier()  # no rank writes before every rank has checked the folder
        if resume_meta is not None:
            self.load(self.run_dir / STATE_FILE)
            if self.step >= self.max_steps:
                if self.dist.is_main:
                    print(f"{self.run_dir} is already trained to step {self.step} (budget {self.max_steps} "
                          "steps); nothing to do: raise max_steps to train on, or pick a new run_name")
                return {}
        # a fresh run's folder is removed again if the run fails before its first checkpoint
        fresh = resume_meta is None and self.dist.is_main
        guard = RunFolderGuard(self.run_dir, self.run_dir / STATE_FILE) if fresh else contextlib.nullcontext()
        with guard:
            return self._train_to_budget(resumed=resume_meta is not None)

    def _train_to_budget(self, resumed: bool) -> dict[str, float]:
        self._start(resumed)
        cfg = self.config
        bar = tqdm(total=self.max_steps, initial=self.step, desc=f"image-gen-train {cfg.objective}",
                   mininterval=5.0, disable=not (cfg.progress and self.dist.is_main))
        last: dict[str, float] = {}
        try:
            while self.step < self.max_steps:
                tic, cpu_tic = time.perf_counter(), time.process_time()
                last = mean_metrics(self.train_step(), self.dist)  # a collective: every rank, every step
                self.train_cpu_seconds += time.process_time() - cpu_tic
                self._window[0] += 1
                self._window[1] += time.perf_counter() - tic
                self.train_seconds += time.perf_counter() - tic
                bar.update(1)
                self._periodic(last)
            result = self._finish(last)
            self.save()  # after the final row and export: a train state at the budget means a finished run
            return {**last, **result}
        finally:
            bar.close()
            if self.logger is not None:
                self.logger.close()

    def train_step(self) -> dict[str, float]:
        """One optimiser step (this rank's metrics, ``train/`` keys)."""
        cfg = self.config
        self.model.train()
        lr = cfg.lr * lr_factor(self.step, self.step / self.max_steps, self.warmup_steps, cfg.lr_schedule,
                                self.warmup_steps / self.max_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss, metrics = self._accumulate(self.objective.sample_batch(self.generator))
        max_norm = cfg.grad_clip if cfg.grad_clip is not None else math.inf
        grad_norm = full_tensor(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        self._check_finite(loss, grad_norm)  # before any weight, moment or EMA is touched
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model, self.step + 1)  # 1-based count of updates
        self.objective.after_step()
        self.step += 1
        out = {"train/loss": float(loss), "train/grad_norm": float(grad_norm), "train/lr": lr}
        return {**out, **{f"train/{key}": value for key, value in metrics.items()}}

    def _accumulate(self, batch: Any) -> tuple[Tensor, dict[str, float]]:
        """Forward/backward of this rank's micro-batches; returns the summed loss and the mean diagnostics."""
        micros = self.objective.micro_batches(batch)
        total = torch.zeros((), device=self.device)
        means: dict[str, float] = {}
        for i, micro in enumerate(micros):
            with self._gradient_sync(last=i == len(micros) - 1):  # forward too: DDP decides there
                loss, metrics = self.objective.compute_loss(micro, self.generator)
                loss.backward()
            total += loss.detach()
            for key, value in metrics.items():
                means[key] = means.get(key, 0.0) + value / len(micros)
        return total, means

    def _check_finite(self, loss: Tensor, grad_norm: Tensor) -> None:
        """NonFiniteLossError if this step's loss or gradient norm is NaN/Inf on any rank (every rank calls
        it: under DDP/FSDP the values are averaged, so all ranks stop together)."""
        values = torch.stack([loss.detach().float().reshape(()), grad_norm.detach().float().reshape(())
                              .to(loss.device)])
        values = all_reduce_mean(values, self.dist)  # a NaN/Inf on one rank makes the mean non-finite
        if bool(torch.isfinite(values).all()):
            return
        loss_value, norm_value = values.tolist()
        what = "loss" if not math.isfinite(loss_value) else "gradient norm"
        state = self.run_dir / STATE_FILE
        if self.saved_step is not None:
            where = f"the last good checkpoint is {state} (step {self.saved_step})"
        else:
            where = f"no checkpoint of {self.run_dir} was written yet"
        cfg = self.config
        clip = "none" if cfg.grad_clip is None else cfg.grad_clip
        raise NonFiniteLossError(
            f"non-finite {what} at step {self.step + 1} of {self.run_dir} (loss {loss_value}, gradient norm "
            f"{norm_value}); stopped without applying the update, {where}. Lower lr (now {cfg.lr}) or clip "
            f"gradients harder (grad_clip, now {clip}) in a new run_name (a resume keeps the run's settings)")

    def _gradient_sync(self, last: bool):
        """Context of a micro-batch: gradients are reduced over ranks only in the last one."""
        if last or not self.dist.distributed:
            return contextlib.nullcontext()
        if self.config.fsdp:
            return _fsdp_no_sync(self.objective.wrapped)
        return self.objective.wrapped.no_sync()

    def _periodic(self, metrics: dict[str, float]) -> None:
        """Metrics row and sample grid (rank 0), then the checkpoint (every rank: FSDP gathers) due after this
        step. The row goes first, so that a checkpoint never holds a step whose row could be lost: a run
        killed between the two redoes the step from the previous checkpoint and logs it again. The final
        checkpoint is written by :meth:`fit`, after the objective's final row and export."""
        cfg, step = self.config, self.step
        final = step == self.max_steps
        keep = cfg.keep_every is not None and step % cfg.keep_every == 0
        if self.dist.is_main:
            if step % cfg.log_every == 0 or final or keep:  # a kept step's row holds its training time
                self.logger.log({**metrics, **self._throughput()}, step)
            if step % cfg.sample_every == 0 or final:
                grid = self.sample_grid()
                if grid is not None:
                    save_grid(grid, grid_path(self.run_dir, step), nrow=GRID_PER_CLASS)
        if keep:
            self.keep()
        if step % cfg.checkpoint_every == 0 and not final:
            self.save()

    def _throughput(self) -> dict[str, float]:
        steps, seconds = self._window
        self._window = [0, 0.0]
        rate = steps / max(seconds, 1e-9)
        per_step = self.objective.images_per_step
        return {"train/steps_per_s": rate, "train/images_per_s": rate * per_step,
                "train/samples_seen": float(self.step * per_step), "train/minutes": self.train_seconds / 60.0,
                "train/cpu_minutes": self.train_cpu_seconds / 60.0}

    def sample_grid(self, per_class: int = GRID_PER_CLASS) -> Tensor | None:
        """EMA samples [K * per_class, C, H, W] in pixels, class-major, fixed seed (None: no samples)."""
        return self.objective.sample_grid(self.eval_model, per_class)

    # --- run folder and checkpoints ----------------------------------------------------------------------
    def _start(self, resumed: bool) -> None:
        """Rank 0 writes the run folder's files (the folder check passed and a resumed state is loaded): the
        metrics log without rows after the checkpoint, no temporaries of killed writes, config.yaml."""
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.logger = MetricsLogger(self.run_dir / METRICS_FILE)
            if resumed:
                self.logger.truncate_after(self.step)  # rows after the checkpoint: this run logs them again
                remove_stale_temporaries(self.run_dir)  # of writes a killed run left unfinished
                print(f"resumed from {self.run_dir / STATE_FILE} at step {self.step}")
            write_config(self.run_dir, self.config)
        self.dist.barrier()

    def _finish(self, last: dict[str, float]) -> dict[str, float]:
        self.dist.barrier()
        result = self.objective.finish(self.run_dir, last, self.train_seconds)
        if result and self.dist.is_main:
            self.logger.log(result, self.step)
        self.dist.barrier()
        return result

    def save(self) -> None:
        """Every rank calls it (FSDP gathers the shards); rank 0 writes the objective's export and the
        resume state."""
        state = self.resume_state()
        if not self.dist.is_main:
            return
        weights = {k: v for k, v in state[0].items() if k.startswith(("ema.", "model."))}
        self.objective.export_checkpoint(self.run_dir, weights, self.step)
        save_train_state(state, self.run_dir / STATE_FILE)
        self.saved_step = self.step

    def keep(self) -> None:
        """Every rank calls it (FSDP gathers); rank 0 writes this step's export to checkpoints/step_<N>/,
        which no later checkpoint overwrites (objectives without a per-step export write nothing)."""
        weights = self._weights()
        if self.dist.is_main:
            folder = kept_dir(self.run_dir, self.step)
            folder.mkdir(parents=True, exist_ok=True)
            self.objective.export_checkpoint(folder, weights, self.step)

    def _weights(self) -> dict[str, Tensor]:
        """Full ``model.*`` and ``ema.*`` tensors (every rank: FSDP shards are gathered)."""
        tensors = {f"model.{k}": v for k, v in full_state_dict(self.model).items()}
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        return tensors

    def resume_state(self) -> tuple[dict[str, Tensor], dict]:
        """Everything an exact resume needs: named full tensors and JSON-able metadata (every rank calls it:
        FSDP shards are gathered)."""
        tensors = self._weights()
        tensors["generator"] = self.generator.get_state()
        extra, extra_meta = self.objective.state_dict()
        tensors.update(extra)
        optimizer_meta = flatten_optimizer(full_optimizer_state(self.optimizer), tensors)  # optimizer.<i>.<k>
        meta = {"step": self.step, "train_seconds": self.train_seconds,
                "train_cpu_seconds": self.train_cpu_seconds,
                "config": stored_config(self.config, self.dist.world_size), **extra_meta}
        return tensors, {**meta, "optimizer": optimizer_meta}

    def load(self, path) -> None:
        """Restore weights, EMA, optimiser, generator, the objective's state and the step counter."""
        tensors, meta = load_train_state(path)
        load_full_state_dict(self.model, with_prefix(tensors, "model."))  # sharded again under FSDP
        if self.ema is not None:
            ema_state = with_prefix(tensors, "ema.")
            if not ema_state:
                raise ValueError(f"{path} holds no EMA weights (a run with ema=false); resume it with "
                                 "ema=false or start a new run_name")
            self.ema.load_state_dict(ema_state)
        optimizer_state = unflatten_optimizer(meta["optimizer"], with_prefix(tensors, "optimizer."))
        load_full_optimizer_state(self.optimizer, optimizer_state)
        self.generator.set_state(tensors["generator"])
        self.objective.load_state_dict(tensors, meta)
        self.step = self.saved_step = int(meta["step"])
        self.train_seconds = float(meta.get("train_seconds", 0.0))  # absent in files of the older trainers
        self.train_cpu_seconds = float(meta.get("train_cpu_seconds", 0.0))  # absent before keep_every


@contextlib.contextmanager
def _fsdp_no_sync(model):
    """FSDP2's counterpart of DDP's no_sync: keep unreduced gradients for the next micro-batch."""
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def train(config: ImageTrainConfig, dist_info: DistInfo | None = None) -> Trainer:
    """Run (or resume) training to the objective's budget; returns the trainer (``model``, ``ema``, ``step``,
    ``objective``).

    dist_info: None joins the process group torchrun describes (nccl for a cuda device, else gloo), or runs
    alone without torchrun.
    """
    if dist_info is None:
        backend = "nccl" if pick_device(config.device).type == "cuda" else "gloo"
        dist_info = init_distributed(backend)
    check_image_run_folder(config, dist_info.world_size)  # refuse before loading data (fit checks again)
    trainer = Trainer(config, dist_info)
    trainer.fit()
    return trainer

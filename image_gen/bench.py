"""``image-gen-bench``: where a drifting training step's time goes, beside a flow-matching step on the same
DiT and batch, in one run (one thread).

    image-gen-bench                                                 # fmnist_latent: latent + decoded + flow
    image-gen-bench --steps 10 limit_per_class=1000                 # hydra overrides of the drifting config
    image-gen-bench --config-name smoke                             # a pixel config: one drifting row + flow

Runs ``Trainer.train_step`` unchanged and times its parts by wrapping them (measurement only, nothing in the
trainer changes): the generator's forward (a forward hook), ``DriftingObjective.features`` (encoder forward on
generated, positive and unconditional samples; with feature_space=decoded including the VAE decoder), the
drift field + loss (``feature_drift_loss``), backward split at the moment the gradient reaches the generator's
output (before: through the field targets, encoder and decoder; after: through the generator), and the
optimizer step. They add up to four parts: generator (forward + its backward), feature encoder (forward + the
backward through it), field, optimiser; "rest" is everything else (sampling, queue, EMA, clip).

In latent space the drifting step is timed once per ``--feature-spaces`` entry (``latent``: the config's
latent-MAE; ``decoded``: the pixel MAE ``--decoded-encoder`` on VAE-decoded latents). The flow step is the
rectified-flow objective on the drifting config's DiT, data and ``n_classes * n_neg`` samples per step.
Times are CPU seconds per step (``time.process_time``: what the one thread used, robust to other jobs on the
machine) averaged over ``--steps`` after ``--warmup`` untimed steps; wall seconds are reported beside them.
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import time
from collections import defaultdict

import image_gen.objectives.drifting as drifting_module
from drifting_policy.common.entry import report_user_errors, set_threads
from image_gen.objectives.drifting import FEATURE_SPACES
from image_gen.objectives.flow import FlowTrainConfig
from image_gen.training.hydra_config import compose_train_config
from image_gen.training.trainer import Trainer

PARTS = ("generator_fwd", "features_fwd", "field", "backward_features", "backward_generator", "optimizer")
# the four parts of the report, each a sum of timed spans
SPLIT = {
    "generator": ("generator_fwd", "backward_generator"),
    "encoder": ("features_fwd", "backward_features"),
    "field": ("field",),
    "optimizer": ("optimizer",),
}
DECODED_ENCODER = "runs/mae_smoke/mae.safetensors"  # the pixel MAE of the decoded path (mae_smoke.yaml)


class Clock:
    """Accumulates CPU and wall seconds per part; ``start``/``stop`` (or ``span``) open and close a part."""

    def __init__(self):
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)
        self.open: dict[str, tuple[float, float]] = {}

    def start(self, name: str) -> None:
        self.open[name] = (time.process_time(), time.perf_counter())

    def stop(self, name: str) -> None:
        cpu, wall = self.open.pop(name)
        self.cpu[name] += time.process_time() - cpu
        self.wall[name] += time.perf_counter() - wall

    @contextlib.contextmanager
    def span(self, name: str):
        self.start(name)
        try:
            yield
        finally:
            self.stop(name)


def instrument(trainer, clock: Clock) -> None:
    """Wrap the trainer's parts so that every call lands in ``clock`` (this process only)."""
    objective = trainer.objective
    features, step = objective.features, trainer.optimizer.step
    field = drifting_module.feature_drift_loss

    def timed_features(x):
        with clock.span("features_fwd"):
            return features(x)

    def timed_field(*args, **kwargs):
        with clock.span("field"):
            out = field(*args, **kwargs)
        clock.start("backward_features")  # backward starts right after the loss exists
        return out

    def reached_generator(grad):
        clock.stop("backward_features")
        clock.start("backward_generator")

    def output_hook(module, inputs, output):
        clock.stop("generator_fwd")
        if output.requires_grad:
            output.register_hook(reached_generator)

    def timed_step(*args, **kwargs):
        clock.stop("backward_generator")
        with clock.span("optimizer"):
            return step(*args, **kwargs)

    objective.features = timed_features
    trainer.optimizer.step = timed_step
    drifting_module.feature_drift_loss = timed_field
    trainer.model.register_forward_pre_hook(lambda module, inputs: clock.start("generator_fwd"))
    trainer.model.register_forward_hook(output_hook)


def time_steps(trainer, steps: int, warmup: int) -> tuple[float, float]:
    """(CPU, wall) seconds per ``trainer.train_step`` after ``warmup`` untimed steps."""
    for _ in range(warmup):
        trainer.train_step()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return (time.process_time() - cpu) / steps, (time.perf_counter() - wall) / steps


def profile(config, steps: int, warmup: int) -> dict:
    """Per-step CPU seconds of the drifting step and of each part (see the module docstring), plus wall."""
    trainer = Trainer(config)
    for _ in range(warmup):
        trainer.train_step()
    clock = Clock()
    field = drifting_module.feature_drift_loss
    instrument(trainer, clock)
    try:
        step_cpu, step_wall = time_steps(trainer, steps, warmup=0)
    finally:
        drifting_module.feature_drift_loss = field  # the module-level wrapper must not outlive the profile
    out = {"step_s": step_cpu, "step_wall_s": step_wall}
    for part in PARTS:
        out[f"{part}_s"] = clock.cpu[part] / steps
    for name, parts in SPLIT.items():
        out[f"{name}_s"] = sum(out[f"{part}_s"] for part in parts)
    out["rest_s"] = step_cpu - sum(out[f"{name}_s"] for name in SPLIT)
    return out


def flow_config(drifting) -> FlowTrainConfig:
    """The flow objective on the drifting config's DiT, data, optimiser and ``n_classes * n_neg`` samples."""
    shared = ("run_name", "out_dir", "seed", "device", "data_root", "limit_per_class", "space", "vae_path",
              "model", "lr", "betas", "weight_decay", "grad_clip", "ema_max_decay")
    values = {name: getattr(drifting, name) for name in shared}
    return FlowTrainConfig(**values, batch_size=drifting.n_classes * drifting.n_neg, resume=False)


def drifting_configs(config, feature_spaces, decoded_encoder: str) -> dict:
    """label -> drifting config: one per feature space in latent space, the config itself in pixel space."""
    if config.space != "latent":
        return {"pixel": config}
    out = {}
    for space in feature_spaces:
        changes = {"feature_space": space}
        if space == "decoded" and config.feature_space != "decoded":
            changes["encoder_path"] = decoded_encoder
        out[space] = dataclasses.replace(config, **changes)
    return out


def bench(config, feature_spaces=FEATURE_SPACES, decoded_encoder: str = DECODED_ENCODER, steps: int = 10,
          warmup: int = 2) -> dict:
    """The drifting step per feature space (with its split) and the flow step; CPU seconds per step.

    ``drifting_step_s`` is the first feature space's step (the default config's), ``ratio`` it over
    ``flow_step_s``."""
    drifting = {label: profile(cfg, steps, warmup)
                for label, cfg in drifting_configs(config, feature_spaces, decoded_encoder).items()}
    flow_cpu, flow_wall = time_steps(Trainer(flow_config(config)), steps, warmup)
    first = next(iter(drifting.values()))
    return {"drifting_step_s": first["step_s"], "flow_step_s": flow_cpu, "ratio": first["step_s"] / flow_cpu,
            "flow_step_wall_s": flow_wall, "drifting": drifting, "steps": steps,
            "generated_per_step": config.n_classes * config.n_neg}


def format_table(result: dict) -> str:
    """Markdown table: CPU s per step of each part, one column per drifting feature space, then flow."""
    labels = list(result["drifting"])
    lines = ["| CPU s per step | " + " | ".join(f"drifting ({label})" for label in labels) + " | flow |",
             "|---|" + "---|" * (len(labels) + 1)]
    for name in (*SPLIT, "rest"):
        cells = [f"{result['drifting'][label][f'{name}_s']:.3f}" for label in labels]
        lines.append(f"| {name} | " + " | ".join(cells) + " | |")
    steps = [f"**{result['drifting'][label]['step_s']:.3f}**" for label in labels]
    lines.append("| step | " + " | ".join(steps) + f" | **{result['flow_step_s']:.3f}** |")
    ratios = [f"{result['drifting'][label]['step_s'] / result['flow_step_s']:.1f}x" for label in labels]
    lines.append("| / flow step | " + " | ".join(ratios) + " | 1.0x |")
    return "\n".join(lines)


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="image-gen-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-name", default="fmnist_latent",
                        help="a drifting config of configs/image_gen")
    parser.add_argument("--feature-spaces", nargs="+", choices=FEATURE_SPACES, default=list(FEATURE_SPACES))
    parser.add_argument("--decoded-encoder", default=DECODED_ENCODER,
                        help="pixel MAE of feature_space=decoded when the config's encoder is a latent-MAE")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="hydra overrides of the drifting config, e.g. n_pos=8")
    args = parser.parse_args(argv)
    set_threads(1)
    config = compose_train_config(args.config_name, [*args.overrides, "resume=false"])
    if config.objective != "drifting":
        parser.error(f"--config-name {args.config_name} trains objective={config.objective!r}; the bench "
                     "times the drifting step (pick a drifting config)")
    result = bench(config, args.feature_spaces, args.decoded_encoder, args.steps, args.warmup)
    print(format_table(result))
    print(json.dumps({"config": args.config_name, **result}))


if __name__ == "__main__":
    main()

"""Where a drifting training step's time goes: generator, feature encoder (and VAE decoder), field, optimizer.

    python -m image_gen.profile_step --config-name smoke --steps 10
    python -m image_gen.profile_step --config-name fmnist_latent --steps 10 limit_per_class=1000 n_pos=8

Runs ``Trainer.train_step`` of the drifting objective unchanged and times its parts by wrapping them
(measurement only, nothing in the trainer changes): the generator's forward (a forward hook),
``DriftingObjective.features`` (encoder forward on generated, positive and unconditional samples; in latent
space including the VAE decoder), the drift field + loss (``feature_drift_loss``), backward split at the
moment the gradient reaches the generator's output (before: through the field targets, encoder and decoder;
after: through the generator), and the optimizer step. "rest" is everything else (sampling, queue, EMA,
clip). Both CPU time (``time.process_time``, what one thread used) and wall time are reported, averaged over
``--steps`` after ``--warmup`` untimed steps.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections import defaultdict

import image_gen.objectives.drifting as drifting_module
from drifting_policy.common.entry import report_user_errors, set_threads
from image_gen.training.hydra_config import compose_train_config
from image_gen.training.trainer import Trainer

PARTS = ("generator_fwd", "features_fwd", "field", "backward_features", "backward_generator", "optimizer")


class Clock:
    """Accumulates CPU and wall seconds per part; ``mark`` opens/closes spans by name."""

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


def profile(config, steps: int, warmup: int) -> dict:
    """Per-step CPU seconds and CPU shares of each part (see the module docstring), plus step wall time."""
    trainer = Trainer(config)
    for _ in range(warmup):
        trainer.train_step()
    clock = Clock()
    field = drifting_module.feature_drift_loss
    instrument(trainer, clock)
    try:
        total_cpu, total_wall = time.process_time(), time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        total_cpu, total_wall = time.process_time() - total_cpu, time.perf_counter() - total_wall
    finally:
        drifting_module.feature_drift_loss = field  # the module-level wrapper must not outlive the profile
    out = {"steps": steps, "step_cpu_s": total_cpu / steps, "step_wall_s": total_wall / steps}
    for part in PARTS:
        out[f"{part}_cpu_s"] = clock.cpu[part] / steps
        out[f"{part}_share"] = clock.cpu[part] / total_cpu
    out["rest_cpu_s"] = (total_cpu - sum(clock.cpu[p] for p in PARTS)) / steps
    return out


@report_user_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-name", default="smoke")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="hydra overrides, e.g. n_pos=8")
    args = parser.parse_args(argv)
    set_threads(1)
    config = compose_train_config(args.config_name, [*args.overrides, "resume=false"])
    if config.objective != "drifting":
        parser.error(f"--config-name {args.config_name} trains objective={config.objective!r}; the profile "
                     "times the drifting step (pick a drifting config)")
    print(json.dumps({"config": args.config_name, **profile(config, args.steps, args.warmup)}))


if __name__ == "__main__":
    main()

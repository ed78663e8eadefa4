"""The smallest image-gen-train configuration, shared by the training, evaluation and DDP tests, and the same
run as command-line overrides of configs/image_gen/smoke.yaml (for tests of the real console script)."""

from image_gen.objectives.drifting import DriftingTrainConfig


def tiny_train_config(
    out_dir: str, data_root: str, mae_path: str | None, **overrides
) -> DriftingTrainConfig:
    """A DiT-T/4 on 4 classes with 4 generated/positive/unconditional samples each: a step takes ~0.1 s."""
    base = dict(
        run_name="run",
        out_dir=out_dir,
        data_root=data_root,
        encoder_path=mae_path,
        device="cpu",
        model={"size": "DiT-T/4", "num_in_context": 2, "num_style_tokens": 4},
        n_classes=4,
        n_neg=4,
        n_pos=4,
        n_unc=4,
        queue_per_class=8,
        queue_global=16,
        push_per_step=16,
        max_steps=3,
        warmup_steps=2,
        log_every=1,
        sample_every=100,
        checkpoint_every=100,
    )
    return DriftingTrainConfig(**{**base, **overrides})


def tiny_train_overrides(out_dir, data_root, mae_path, **overrides) -> list[str]:
    """``image-gen-train`` overrides (of configs/image_gen/smoke.yaml) for the run of tiny_train_config."""
    values = dict(
        out_dir=out_dir, run_name="run", data_root=data_root, encoder_path=mae_path, limit_per_class="null",
        device="cpu", **{"model.size": "DiT-T/4", "model.num_in_context": 2, "model.num_style_tokens": 4},
        n_classes=4, n_neg=4, n_pos=4, n_unc=4, queue_per_class=8, queue_global=16, push_per_step=16,
        max_steps=3, warmup_steps=2, log_every=1, sample_every=100, checkpoint_every=100, progress="false",
    )
    return [f"{key}={value}" for key, value in {**values, **overrides}.items()]

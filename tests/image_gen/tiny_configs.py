"""The smallest image-gen-train configuration, shared by the training, evaluation and DDP tests."""

from image_gen.train import TrainConfig


def tiny_train_config(out_dir: str, data_root: str, mae_path: str | None, **overrides) -> TrainConfig:
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
        steps=3,
        warmup_steps=2,
        log_every=1,
        sample_every=100,
        checkpoint_every=100,
    )
    return TrainConfig(**{**base, **overrides})

"""The smallest image-gen-train configuration, shared by the training, evaluation and DDP tests, and the same
run as command-line overrides of configs/image_gen/smoke.yaml (for tests of the real console script)."""

from image_gen.objectives.drifting import DriftingTrainConfig

LATENT_MAE = {"in_channels": 4, "input_size": 8, "width": 4, "blocks": (1, 1)}  # for the 8x8x4 test VAE
LATENT_DIT = {"size": "DiT-T/2", "in_channels": 4, "input_size": 8, "num_in_context": 2,
              "num_style_tokens": 4}


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


def latent_train_config(out_dir, data_root, encoder_path, vae_path, **overrides) -> DriftingTrainConfig:
    """tiny_train_config in the latent space of a tiny VAE (8x8x4), feature_space=latent unless overridden."""
    return tiny_train_config(str(out_dir), str(data_root), encoder_path, space="latent", vae_path=vae_path,
                             model=LATENT_DIT, **overrides)

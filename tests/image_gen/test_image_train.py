"""Generator training: alpha sampling, one step, exact resume, config checks; tiny overfit (slow)."""

import dataclasses

import pytest
import torch
from tiny_configs import tiny_train_config

from image_gen.objectives.drifting import DriftingTrainConfig, sample_alpha
from image_gen.sampling import load_generator
from image_gen.training.trainer import Trainer, train


def tiny_config(tmp_path, fake_root, mae_path, **overrides):
    return tiny_train_config(str(tmp_path), str(fake_root), mae_path, **overrides)


def test_alpha_follows_a_power_law_in_range():
    config = DriftingTrainConfig(features={"kinds": ["global"]}, alpha_min=1.0, alpha_max=4.0,
                                 alpha_power=3.0)
    alpha = sample_alpha(20000, config, torch.Generator().manual_seed(0))
    assert alpha.min() >= 1.0 and alpha.max() <= 4.0
    # p ~ a^-3 on [1, 4]: P(alpha < 2) = (1 - 2^-2) / (1 - 4^-2) = 0.8
    assert (alpha < 2).float().mean().item() == pytest.approx(0.8, abs=0.02)
    half = dataclasses.replace(config, no_cfg_frac=0.5)
    assert (sample_alpha(20000, half, torch.Generator().manual_seed(0)) == 1.0).float().mean() > 0.45


def test_config_errors_say_what_to_set():
    with pytest.raises(ValueError, match="vae_path"):
        DriftingTrainConfig(space="latent", features={"kinds": ["global"]})
    with pytest.raises(ValueError, match="encoder_path"):
        DriftingTrainConfig()
    with pytest.raises(ValueError, match="n_neg=1"):
        DriftingTrainConfig(features={"kinds": ["global"]}, n_neg=1)


def test_one_step_logs_finite_metrics(tmp_path, fake_root, mae_path):
    trainer = Trainer(tiny_config(tmp_path, fake_root, mae_path))
    before = [p.clone() for p in trainer.model.parameters()]
    metrics = trainer.train_step()
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert {"train/loss", "train/grad_norm", "train/drift_rms/tau_0.02", "train/global/gen_spread"} <= set(
        metrics
    )
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


def test_resume_is_exact(tmp_path, fake_root, mae_path):
    straight = train(tiny_config(tmp_path / "a", fake_root, mae_path, max_steps=3))
    train(tiny_config(tmp_path / "b", fake_root, mae_path, max_steps=2, checkpoint_every=2))
    resumed = train(tiny_config(tmp_path / "b", fake_root, mae_path, max_steps=3))
    assert resumed.step == 3
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    model, meta = load_generator(tmp_path / "b" / "run" / "model.safetensors")
    assert meta["step"] == 3 and (tmp_path / "b" / "run" / "samples" / "step_000003.png").is_file()
    torch.testing.assert_close(model.state_dict(), resumed.ema.model.state_dict())


@pytest.mark.slow
def test_tiny_overfit_lands_samples_on_their_class(tmp_path, fake_root):
    """Raw-space drifting on the synthetic bars: each class's samples end nearest their own class mean."""
    config = tiny_config(
        tmp_path,
        fake_root,
        None,
        features={"kinds": ["global"]},
        n_classes=10,
        n_neg=8,
        n_pos=8,
        max_steps=150,
        lr=2e-3,
        warmup_steps=10,
        ema_max_decay=0.9,
        temperatures=(0.2,),
    )
    trainer = train(config)
    labels = torch.arange(10).repeat_interleave(8)
    samples = trainer.ema.model.generate(labels, 1.0, torch.Generator().manual_seed(0)).flatten(1)
    data = trainer.objective
    means = torch.stack([data.samples[data.labels == c].mean(0).flatten() for c in range(10)])
    nearest = torch.cdist(samples, means).argmin(1)
    assert (nearest == labels).float().mean() > 0.9


def test_latent_space_step_caches_latents_once(tmp_path, fake_root, mae_path):
    from image_gen.models.vae import LatentVAE, VAEConfig, build_autoencoder, save_vae

    torch.manual_seed(0)
    vae_config = VAEConfig(block_out_channels=(8, 8, 8), norm_num_groups=4)
    save_vae(LatentVAE(build_autoencoder(vae_config), vae_config), tmp_path / "vae.safetensors")
    config = tiny_config(
        tmp_path,
        fake_root,
        mae_path,
        space="latent",
        vae_path=str(tmp_path / "vae.safetensors"),
        model={"size": "DiT-T/2", "in_channels": 4, "input_size": 8, "num_style_tokens": 4},
        feature_space="decoded",  # the pixel MAE on decoded latents (test_latent_mae.py: the latent-MAE)
    )
    trainer = Trainer(config)
    assert trainer.objective.samples.shape == (200, 4, 8, 8) and (tmp_path / "latents_train.pt").is_file()
    metrics = trainer.train_step()
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert trainer.sample_grid(per_class=1).shape == (10, 1, 32, 32)  # decoded to pixels


def test_resume_drops_metric_rows_logged_after_the_checkpoint(tmp_path, fake_root, mae_path):
    """A run that crashed after logging step 3 but before checkpointing it resumes at step 2; the log must
    not keep the stale step-3 row next to the one the resumed run writes."""
    import json
    import shutil

    run = tmp_path / "run"
    train(tiny_config(tmp_path, fake_root, mae_path, max_steps=2))
    shutil.copy(run / "train_state.safetensors", tmp_path / "state_step2.safetensors")
    train(tiny_config(tmp_path, fake_root, mae_path, max_steps=3))  # logs and checkpoints step 3
    stale = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    shutil.copy(tmp_path / "state_step2.safetensors", run / "train_state.safetensors")  # the "crash"
    train(tiny_config(tmp_path, fake_root, mae_path, max_steps=3))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert rows[-1]["train/loss"] == stale["train/loss"]  # the same step 3, logged once


def test_resume_state_is_safetensors_without_pickle(tmp_path, fake_root, mae_path):
    from safetensors import safe_open

    from image_gen.training.state import load_train_state

    train(tiny_config(tmp_path, fake_root, mae_path, max_steps=2))
    run = tmp_path / "run"
    assert not list(run.glob("*.pt"))
    with safe_open(str(run / "train_state.safetensors"), framework="pt") as handle:
        keys = set(handle.keys())
    assert {"generator", "stream.order", "queue.class_items", "optimizer.0.exp_avg"} <= keys
    _, meta = load_train_state(run / "train_state.safetensors")
    assert meta["step"] == 2 and meta["optimizer"]["param_groups"][0]["betas"] == [0.9, 0.95]
    with pytest.raises(ValueError, match="not a resume state"):
        load_train_state(run / "model.safetensors")


def test_trainer_leaves_global_torch_state_alone(tmp_path, fake_root, mae_path):
    """No torch.manual_seed / set_num_threads in the library: the caller's RNG and thread count survive,
    and the initial weights depend on config.seed only."""
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    first = Trainer(tiny_config(tmp_path, fake_root, mae_path, num_threads=threads + 1))
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads
    torch.manual_seed(456)
    second = Trainer(tiny_config(tmp_path, fake_root, mae_path))
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)
    other_seed = Trainer(tiny_config(tmp_path, fake_root, mae_path, seed=1))
    pairs = zip(first.model.parameters(), other_seed.model.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)


def test_keep_every_keeps_each_steps_export_and_its_cpu_time(tmp_path, fake_root, mae_path):
    """keep_every=2: checkpoints/step_2 holds the EMA weights a 2-step run ends with (not those of step 4),
    its metrics row the CPU time spent so far, and a resume continues that CPU count."""
    import json

    from image_gen.training.state import read_state_metadata

    four = train(tiny_config(tmp_path / "a", fake_root, mae_path, max_steps=4, keep_every=2, log_every=100))
    two = train(tiny_config(tmp_path / "b", fake_root, mae_path, max_steps=2))
    kept = tmp_path / "a" / "run" / "checkpoints"
    kept2, meta2 = load_generator(kept / "step_000002" / "model.safetensors")
    kept4, _ = load_generator(kept / "step_000004" / "model.safetensors")
    assert meta2["step"] == 2 and sorted(p.name for p in kept.iterdir()) == ["step_000002", "step_000004"]
    torch.testing.assert_close(kept2.state_dict(), two.ema.model.state_dict(), rtol=0, atol=0)
    torch.testing.assert_close(kept4.state_dict(), four.ema.model.state_dict(), rtol=0, atol=0)
    assert any(not torch.equal(a, b) for a, b in zip(kept2.parameters(), kept4.parameters(), strict=True))
    rows = [json.loads(line) for line in (tmp_path / "a" / "run" / "metrics.jsonl").read_text().splitlines()]
    cpu = [row["train/cpu_minutes"] for row in rows if "train/cpu_minutes" in row]
    assert [row["step"] for row in rows if "train/cpu_minutes" in row] == [2, 4] and 0 < cpu[0] < cpu[1]
    stored = read_state_metadata(tmp_path / "b" / "run" / "train_state.safetensors")["train_cpu_seconds"]
    resumed = train(tiny_config(tmp_path / "b", fake_root, mae_path, max_steps=3))
    assert 0 < stored < resumed.train_cpu_seconds

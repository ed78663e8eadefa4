"""Latent-MAE: pre-training on the generators' latent cache, and a latent drifting step that never runs the
VAE decoder (feature_space=latent) beside the decoded path that does (feature_space=decoded)."""

import pytest
import torch
from mae_ddp_worker import tiny_mae_config
from tiny_configs import LATENT_MAE, latent_train_config, tiny_train_config

from image_gen.data.latents import latent_cache_path, weights_hash
from image_gen.models.mae import MAE, MAEConfig, load_mae, save_mae
from image_gen.training.trainer import Trainer, train
from image_gen.weight_files import read_metadata


def count_decoder_runs(trainer) -> list[int]:
    """Counter of forward passes of the VAE's decoder network (whoever calls it: vae.decode or diffusers)."""
    calls = [0]

    def hook(module, inputs):
        calls[0] += 1

    trainer.objective.vae.autoencoder.decoder.register_forward_pre_hook(hook)
    return calls


def test_latent_drifting_step_never_runs_the_vae_decoder(tmp_path, fake_root, vae_path, latent_mae_path):
    trainer = Trainer(latent_train_config(tmp_path, fake_root, latent_mae_path, vae_path))
    calls = count_decoder_runs(trainer)
    before = [p.clone() for p in trainer.model.parameters()]
    for _ in range(2):
        trainer.train_step()
    assert calls[0] == 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))
    trainer.sample_grid(per_class=1)  # the counter does see a decode: sample grids are decoded to pixels
    assert calls[0] == 1


def test_decoded_feature_space_decodes_every_feature_batch(tmp_path, fake_root, vae_path, mae_path):
    trainer = Trainer(latent_train_config(tmp_path, fake_root, mae_path, vae_path, feature_space="decoded"))
    calls = count_decoder_runs(trainer)
    trainer.train_step()
    assert calls[0] == 3  # unconditional negatives, generated samples, positives


def test_mismatched_encoder_is_one_line_naming_the_fix(tmp_path, fake_root, vae_path, mae_path,
                                                       latent_mae_path):
    with pytest.raises(ValueError, match=r"1x32x32 inputs but feature_space=latent feeds it 4x8x8 .*"
                                         r"mae_fmnist_latent.*feature_space=decoded"):
        Trainer(latent_train_config(tmp_path / "a", fake_root, mae_path, vae_path))
    with pytest.raises(ValueError, match=r"4x8x8 inputs but feature_space=decoded feeds it 1x32x32 decoded "
                                         r"pixels; point encoder_path at a pixel MAE"):
        Trainer(latent_train_config(tmp_path / "b", fake_root, latent_mae_path, vae_path,
                                    feature_space="decoded"))
    with pytest.raises(ValueError, match="feature_space=decoded needs space=latent"):
        tiny_train_config(str(tmp_path), str(fake_root), mae_path, feature_space="decoded")


def test_latent_mae_of_another_vae_is_refused(tmp_path, fake_root, vae_path):
    path = tmp_path / "mae.safetensors"
    save_mae(MAE(MAEConfig(**LATENT_MAE)), path, {"space": "latent", "vae_hash": "0123456789abcdef"})
    with pytest.raises(ValueError, match="latent-MAE of another VAE .* pre-train it again"):
        Trainer(latent_train_config(tmp_path, fake_root, str(path), vae_path))


def test_latent_mae_trains_on_the_generators_latent_cache(tmp_path, fake_root, vae_path):
    from image_gen.models.vae import load_vae

    config = tiny_mae_config(str(tmp_path), str(fake_root), space="latent", vae_path=vae_path, mae=LATENT_MAE)
    trainer = train(config)
    cache = torch.load(latent_cache_path(vae_path, None))["latents"]
    assert torch.equal(trainer.objective.images, cache)  # [200, 4, 8, 8], what the generator imitates
    path = tmp_path / "mae" / "mae.safetensors"
    assert load_mae(path).config.input_shape == (4, 8, 8)
    assert read_metadata(path)["vae_hash"] == weights_hash(load_vae(vae_path))
    with pytest.raises(ValueError, match="mae.in_channels=4 mae.input_size=8"):
        Trainer(tiny_mae_config(str(tmp_path), str(fake_root), run_name="pixel_mae_on_latents",
                                space="latent", vae_path=vae_path))

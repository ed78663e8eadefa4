"""Latent VAE wrapper: shapes, normalisation, save/load round trip, latent cache written once."""

import pytest
import torch

from image_gen.data.latents import cache_latents
from image_gen.models.vae import LatentVAE, VAEConfig, build_autoencoder, load_vae, save_vae


def tiny_vae():
    torch.manual_seed(0)
    config = VAEConfig(block_out_channels=(8, 8, 8), norm_num_groups=4)
    return LatentVAE(build_autoencoder(config), config).eval()


def test_shapes_and_normalised_latents():
    vae = tiny_vae()
    x = torch.rand(6, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        vae.fit_normalisation(x)
        z = vae.encode_mean(x)
        assert z.shape == (6, 4, 8, 8)
        assert abs(z.mean().item()) < 1e-4 and abs(z.std().item() - 1) < 1e-3
        assert vae.decode(z).shape == (6, 1, 32, 32)


def test_save_load_and_cache(tmp_path):
    vae = tiny_vae()
    with torch.no_grad():
        vae.fit_normalisation(torch.randn(4, 1, 32, 32))
    save_vae(vae, tmp_path / "vae.safetensors")
    loaded = load_vae(tmp_path / "vae.safetensors")
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_mean(x), vae.encode_mean(x))
    first = cache_latents(loaded, x, tmp_path / "latents.pt")
    again = cache_latents(vae, x, tmp_path / "latents.pt")  # same weights: read from disk
    torch.testing.assert_close(first, again)
    other = tiny_vae()
    with torch.no_grad():
        other.fit_normalisation(torch.randn(4, 1, 32, 32) * 3)
    with pytest.raises(ValueError, match="another VAE"):
        cache_latents(other, x, tmp_path / "latents.pt")


def test_train_vae_leaves_global_torch_state_alone(tmp_path, fake_root):
    """No torch.manual_seed / set_num_threads in the VAE objective: the caller's RNG and thread count
    survive, and the trained weights depend on the seed only."""
    from image_gen.objectives.vae import VAETrainConfig
    from image_gen.training.trainer import train

    config = VAEConfig(block_out_channels=(8, 8, 8), norm_num_groups=4)
    common = dict(out_dir=str(tmp_path), max_steps=2, batch_size=4, data_root=str(fake_root), device="cpu",
                  vae=config)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    first = train(VAETrainConfig(run_name="a", **common)).model
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads
    torch.manual_seed(456)
    second = train(VAETrainConfig(run_name="b", **common)).model
    other = train(VAETrainConfig(run_name="c", seed=1, **common)).model
    a, b, c = (m.state_dict() for m in (first, second, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from fake_fmnist import write_fake_fmnist  # noqa: E402

from drifting_policy.common.entry import TRACEBACK_ENV  # noqa: E402


@pytest.fixture(autouse=True)
def user_errors_raise(monkeypatch):
    """Console mains called in-process raise their user errors (as a library call does) instead of printing
    one line and exiting 2; the tests of that one-line report run real processes without this variable."""
    monkeypatch.setenv(TRACEBACK_ENV, "1")


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory):
    return write_fake_fmnist(tmp_path_factory.mktemp("fmnist"))


@pytest.fixture(scope="session")
def mae_path(tmp_path_factory):
    """A tiny random MAE feature encoder saved once (width 4, one block per stage)."""
    from image_gen.models.mae import MAE, MAEConfig, save_mae

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mae") / "mae.safetensors"
    save_mae(MAE(MAEConfig(width=4, blocks=(1, 1))), path)
    return str(path)


@pytest.fixture(scope="session")
def vae_path(tmp_path_factory):
    """A tiny random project VAE (32x32x1 -> 8x8x4), saved once."""
    from image_gen.models.vae import LatentVAE, VAEConfig, build_autoencoder, save_vae

    torch.manual_seed(0)
    config = VAEConfig(block_out_channels=(8, 8, 8), norm_num_groups=4)
    path = tmp_path_factory.mktemp("vae") / "vae.safetensors"
    save_vae(LatentVAE(build_autoencoder(config), config), path)
    return str(path)


@pytest.fixture(scope="session")
def latent_mae_path(tmp_path_factory, vae_path):
    """A tiny random latent-MAE (LATENT_MAE) recorded as trained on ``vae_path``'s latents."""
    from tiny_configs import LATENT_MAE

    from image_gen.data.latents import weights_hash
    from image_gen.models.mae import MAE, MAEConfig, save_mae
    from image_gen.models.vae import load_vae

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("latent_mae") / "mae.safetensors"
    provenance = {"space": "latent", "vae_hash": weights_hash(load_vae(vae_path))}
    save_mae(MAE(MAEConfig(**LATENT_MAE)), path, provenance)
    return str(path)

"""ImageNet path: ImageFolder transform (centre crop, flip, range) and the sharded SD-VAE moment cache."""

import json

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL
from PIL import Image

from image_gen.data.imagenet import (
    LATENT_SCALE,
    LatentCache,
    cache_latents,
    center_crop_arr,
    encode_moments,
    imagenet_folder,
    imagenet_transform,
    load_autoencoder,
)

SIZE = 16


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    """Fake ImageFolder: 2 classes x 3 RGB images of odd sizes (wider and taller than square)."""
    root = tmp_path_factory.mktemp("imagenet") / "train"
    rng = np.random.default_rng(0)
    for c, wnid in enumerate(["n01440764", "n01443537"]):
        (root / wnid).mkdir(parents=True)
        for i, (w, h) in enumerate([(24, 18), (18, 40), (70, 33)]):
            arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / wnid / f"{wnid}_{c}{i}.JPEG", format="PNG")
    return root


@pytest.fixture(scope="module")
def vae_path(tmp_path_factory):
    torch.manual_seed(0)
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=SIZE,
    )
    path = tmp_path_factory.mktemp("vae") / "sd-vae"
    vae.save_pretrained(path)
    return path


def test_center_crop_keeps_the_middle():
    arr = np.zeros((20, 60, 3), dtype=np.uint8)
    arr[:, 20:40] = 255  # white centre third of a 3:1 image
    out = np.array(center_crop_arr(Image.fromarray(arr), 20))
    assert out.shape == (20, 20, 3) and out.min() >= 250  # short side kept, the crop is the white band
    big = np.array(center_crop_arr(Image.fromarray(np.full((90, 200, 3), 7, np.uint8)), 20))
    assert big.shape == (20, 20, 3) and np.all(big == 7)  # box-halving path, then resize


def test_transform_range_and_flip():
    image = Image.fromarray(np.tile(np.arange(SIZE, dtype=np.uint8)[None, :, None] * 16, (SIZE, 1, 3)))
    plain = imagenet_transform(SIZE, flip=False)(image)
    assert plain.shape == (3, SIZE, SIZE) and plain.min() >= -1 and plain.max() <= 1
    assert plain[0, 0, 0] == -1.0  # 0 -> -1
    flipped = {tuple(imagenet_transform(SIZE, flip=True)(image)[0, 0, :2].tolist()) for _ in range(40)}
    assert len(flipped) == 2  # both orientations appear
    assert tuple(plain.flip(-1)[0, 0, :2].tolist()) in flipped


def test_folder_labels_and_missing_root(image_root, tmp_path):
    data = imagenet_folder(image_root, SIZE, flip=False)
    assert len(data) == 6 and data.classes == ["n01440764", "n01443537"]
    x, y = data[4]
    assert x.shape == (3, SIZE, SIZE) and y == 1
    with pytest.raises(FileNotFoundError, match="ILSVRC-2012"):
        imagenet_folder(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_autoencoder(tmp_path)


def test_latent_cache_round_trip(image_root, vae_path, tmp_path):
    data = imagenet_folder(image_root, SIZE, flip=False)
    vae = load_autoencoder(vae_path)
    out = cache_latents(data, vae, tmp_path / "cache", shard_size=4, batch_size=3)
    shards = sorted(out.glob("shard_*.safetensors"))
    assert [p.name for p in shards] == ["shard_00000.safetensors", "shard_00001.safetensors"]
    index = json.loads((out / "index.json").read_text())
    assert index["num_samples"] == 6 and index["latent_scale"] == LATENT_SCALE == 0.18215

    images = torch.stack([data[i][0] for i in range(6)])
    mean, logvar = encode_moments(vae, images)
    mean_f, logvar_f = encode_moments(vae, images.flip(-1))
    cache = LatentCache(out)
    idx = torch.tensor([5, 0, 3])
    m, lv, labels = cache.moments(idx)
    torch.testing.assert_close(m, mean[idx], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lv, logvar[idx], rtol=1e-5, atol=1e-5)
    assert labels.tolist() == [1, 0, 1] and m.shape == (3, 4, SIZE // 2, SIZE // 2)
    mf, _, _ = cache.moments(idx, flip=torch.tensor([True, True, True]))
    torch.testing.assert_close(mf, mean_f[idx], rtol=1e-5, atol=1e-5)

    # posterior sampling: (mean + exp(logvar / 2) * eps) * scale with the caller's generator
    z, _ = cache.sample(idx, torch.Generator().manual_seed(3), flip=False)
    eps = torch.randn(m.shape, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(z, (mean[idx] + torch.exp(0.5 * logvar[idx]) * eps) * LATENT_SCALE)
    z_mean, _ = cache.sample(idx, torch.Generator(), flip=False, posterior=False)
    torch.testing.assert_close(z_mean, mean[idx] * LATENT_SCALE)
    # decoding z / scale gives the autoencoder's reconstruction of the cached mean
    recon = vae.decode(z_mean / LATENT_SCALE).sample
    assert recon.shape == (3, 3, SIZE, SIZE)

    # a rerun skips finished shards; a missing shard is reported
    stamp = shards[0].stat().st_mtime_ns
    cache_latents(data, vae, out, shard_size=4, batch_size=3)
    assert shards[0].stat().st_mtime_ns == stamp
    shards[1].unlink()
    with pytest.raises(FileNotFoundError, match="lacks shards"):
        LatentCache(out)


def test_ranks_split_shards(image_root, vae_path, tmp_path):
    data = imagenet_folder(image_root, SIZE, flip=False)
    vae = load_autoencoder(vae_path)
    cache_latents(data, vae, tmp_path, shard_size=2, batch_size=2, flips=False, rank=1, world_size=2)
    assert [p.name for p in sorted(tmp_path.glob("shard_*"))] == ["shard_00001.safetensors"]
    assert not (tmp_path / "index.json").exists()  # rank 0 writes the index
    cache_latents(data, vae, tmp_path, shard_size=2, batch_size=2, flips=False, rank=0, world_size=2)
    cache = LatentCache(tmp_path)
    assert len(cache) == 6
    with pytest.raises(ValueError, match="flips=False"):
        cache.moments(torch.tensor([0]), flip=torch.tensor([True]))

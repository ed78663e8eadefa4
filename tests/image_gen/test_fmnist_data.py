"""Fashion-MNIST loader: IDX parsing, padding to 32x32 in [-1, 1], clear error when the package is missing."""

import numpy as np
import pytest
import torch

from image_gen.data.fmnist import load_fashion_mnist, load_pixels, read_idx, to_pixels


def test_missing_files_name_the_debian_install_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        load_fashion_mnist("train", tmp_path)


def test_unknown_split_is_rejected(fake_root):
    with pytest.raises(ValueError, match="split='val'"):
        load_fashion_mnist("val", fake_root)


def test_idx_round_trip_and_balanced_limit(fake_root):
    images, labels = load_fashion_mnist("train", fake_root)
    assert images.shape == (200, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [20] * 10
    assert read_idx(fake_root / "t10k-labels-idx1-ubyte.gz").shape == (100,)
    x, y = load_pixels("train", fake_root, limit=3)
    assert x.shape == (30, 1, 32, 32) and torch.bincount(y).tolist() == [3] * 10


def test_pixels_are_padded_with_background_and_scaled():
    images = np.full((2, 28, 28), 255, dtype=np.uint8)
    images[1] = 0
    x = to_pixels(images)
    assert x.shape == (2, 1, 32, 32)
    assert x[0, 0, 2:30, 2:30].eq(1.0).all() and x[0, 0, :2].eq(-1.0).all() and x[0, 0, :, 30:].eq(-1.0).all()
    assert x[1].eq(-1.0).all()


def test_corrupt_header_is_reported(tmp_path):
    import gzip

    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as handle:
        handle.write((1234).to_bytes(4, "big") + b"\0" * 8)
    with pytest.raises(ValueError, match="magic 1234"):
        read_idx(path)

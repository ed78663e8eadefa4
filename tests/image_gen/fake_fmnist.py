"""Tiny synthetic Fashion-MNIST in IDX format for fast tests: class c is a bright bar at rows 2c+4..2c+6."""

import gzip
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def class_images(labels: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 30, size=(len(labels), 28, 28))
    for i, label in enumerate(labels):
        images[i, 2 * label + 4 : 2 * label + 7, 4:24] = 220 + rng.integers(0, 30)
    return images


def write_fake_fmnist(root: Path, per_class: int = 20, test_per_class: int = 10) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, count, seed in (("train", per_class, 0), ("t10k", test_per_class, 1)):
        labels = np.repeat(np.arange(10), count)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", class_images(labels, seed), 2051)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", labels, 2049)
    return root

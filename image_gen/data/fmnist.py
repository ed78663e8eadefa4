"""Fashion-MNIST from the Debian package's IDX files, as 32x32 images in [-1, 1].

The data come from Debian's ``dataset-fashion-mnist`` (60k train + 10k test, 10 classes); nothing is
downloaded at run time. Images are padded 28 -> 32 with the background value (-1) so that patch sizes 2, 4, 8
and the encoder's stride-2 stages divide evenly.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
INSTALL_HINT = (
    "install it with `sudo apt-get install -y dataset-fashion-mnist` (or, without root, "
    "`apt-get download dataset-fashion-mnist && dpkg -x dataset-fashion-mnist_*.deb <dir>` and pass "
    "data_root=<dir>/usr/share/datasets/fashion-mnist)"
)
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
NUM_CLASSES = 10
IMAGE_SIZE = 32  # after padding
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def read_idx(path: str | Path) -> np.ndarray:
    """Read a gzipped IDX file (big-endian header: magic, dims...) into a uint8 array."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC):
        raise ValueError(
            f"{path}: IDX magic {magic}, expected {IMAGE_MAGIC} (images) or {LABEL_MAGIC} (labels)"
        )
    num_dims = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(num_dims)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * num_dims)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} ({int(np.prod(dims))} bytes), file has {data.size}")
    return data.reshape(dims)


def load_fashion_mnist(split: str, root: str | Path = DEFAULT_ROOT) -> tuple[np.ndarray, np.ndarray]:
    """Raw split: images uint8 [N, 28, 28], labels int64 [N]."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split={split!r}; expected one of {sorted(SPLIT_FILES)}")
    paths = [Path(root) / name for name in SPLIT_FILES[split]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files missing: {missing}. The data come from the Debian package "
            f"`dataset-fashion-mnist`: {INSTALL_HINT}."
        )
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{split}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels.astype(np.int64)


def to_pixels(images: np.ndarray | Tensor) -> Tensor:
    """uint8 [N, 28, 28] -> float32 [N, 1, 32, 32] in [-1, 1], padded with -1 (the background)."""
    x = (
        torch.from_numpy(np.array(images, dtype=np.float32)).div(127.5).sub(1.0).unsqueeze(1)
    )  # [N, 1, 28, 28]
    pad = (IMAGE_SIZE - x.shape[-1]) // 2
    return torch.nn.functional.pad(x, (pad, pad, pad, pad), value=-1.0)  # [N, 1, 32, 32]


def load_pixels(
    split: str, root: str | Path = DEFAULT_ROOT, limit: int | None = None
) -> tuple[Tensor, Tensor]:
    """Split as tensors: images float32 [N, 1, 32, 32] in [-1, 1], labels int64 [N].

    ``limit`` keeps the first ``limit`` images of every class (balanced, deterministic) for small runs.
    """
    images, labels = load_fashion_mnist(split, root)
    if limit is not None:
        keep = np.concatenate([np.flatnonzero(labels == c)[:limit] for c in range(NUM_CLASSES)])
        keep.sort()
        images, labels = images[keep], labels[keep]
    return to_pixels(images), torch.from_numpy(labels)

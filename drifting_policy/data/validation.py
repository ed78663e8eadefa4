"""What every demonstration store must satisfy, checked in one place for zarr and hdf5 alike.

- actions and low-dim observations are floating point (integer or string actions would train silently on
  rounded or meaningless numbers); images are uint8 (or float in [0, 255], as in Diffusion Policy's zarr);
- every value is finite;
- a file that cannot be read (a damaged chunk, broken metadata) is reported with its path, not a codec trace.

Every problem raises ``DatasetError`` (a ValueError) naming the file, key, episode and step, and the fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np


class DatasetError(ValueError):
    """A demonstration file is malformed or unreadable; the message names file, key, episode and fix."""


def episode_of_row(episode_ends: np.ndarray, row: int) -> int:
    """Index of the episode holding buffer row ``row`` (len(ends) for rows past the last end)."""
    return int(np.searchsorted(episode_ends, row, side="right"))


def check_values(values: np.ndarray, key: str, episode_ends: np.ndarray, where: str, image: bool = False,
                 episode_names: Sequence[str] | None = None) -> None:
    """Dtype and finiteness of one key's steps ``values`` [T, ...] whose episodes end at ``episode_ends``."""
    dtype = np.dtype(values.dtype)
    if image:
        if dtype != np.uint8 and not np.issubdtype(dtype, np.floating):
            raise DatasetError(f"{where}: {key} is {dtype}; images must be uint8 (or float in [0, 255])")
    elif not np.issubdtype(dtype, np.floating):
        raise DatasetError(f"{where}: {key} is {dtype}; actions and low-dim observations must be floating "
                           f"point: write them as float32")
    if not np.issubdtype(dtype, np.floating) or values.size == 0:
        return
    bad_rows = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
    if len(bad_rows):
        row = int(bad_rows[0])
        episode = episode_of_row(episode_ends, row)
        start = int(episode_ends[episode - 1]) if episode else 0
        name = f" {episode_names[episode]}" if episode_names is not None else ""
        raise DatasetError(f"{where}: {key} has NaN/inf at row {row} (episode {episode}{name}, step "
                           f"{row - start}); re-collect or drop that episode")


@contextlib.contextmanager
def reading(where: str, what: str) -> Iterator[None]:
    """Turn a low-level read failure (codec, JSON, hdf5) into one DatasetError naming the file."""
    try:
        yield
    except DatasetError:
        raise
    except (FileNotFoundError, KeyError):
        raise
    except Exception as error:  # zarr, numcodecs, h5py and json raise many unrelated types
        raise DatasetError(f"{where}: cannot read {what} ({type(error).__name__}: {error}); the file is "
                           f"damaged or not this format: re-collect it or restore a copy") from error

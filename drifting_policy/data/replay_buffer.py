"""Zarr replay buffer in Diffusion Policy's layout.

A store holds ``data/<key>`` arrays that share the leading time axis (one row per recorded step, all
episodes concatenated) and ``meta/episode_ends``: int64 cumulative ends, so episode ``i`` is the row
range ``[episode_ends[i - 1], episode_ends[i])`` and the last end equals the arrays' length. Optional
per-episode arrays ``meta/<key>`` (one row per episode, e.g. the env seed) sit beside it.

Written with zarr 3 (format 3 by default); reads format-2 stores too, including Diffusion Policy's
``pusht_cchi_v7_replay.zarr`` written by zarr 2 with blosc compression.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr
import zarr.storage

from drifting_policy.data.validation import DatasetError, check_values, episode_of_row, reading

EPISODE_ENDS = "episode_ends"
# Attribute set to False while a collector writes and to True when it finishes; a store whose
# attribute says False was interrupted and must not be read as a dataset.
COMPLETE_ATTR = "complete"
# Chunks of about this many bytes along time: big enough for fast sequential reads of images
# (~150 frames of 96x96x3), small enough that appending one episode rewrites little.
TARGET_CHUNK_BYTES = 4 * 2**20
MAX_CHUNK_ROWS = 8192
# Arrays with at most this many values per step are checked for NaN/inf on open (images are not).
FINITE_CHECK_MAX_VALUES = 4096
IMAGE_KEYS = ("img", "image")  # data keys holding camera frames (uint8, or float in [0, 255] as in DP)


def time_chunks(step_shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, ...]:
    """Chunk shape for an array of shape [T, *step_shape]: whole steps, ~TARGET_CHUNK_BYTES each."""
    step_bytes = max(1, int(np.prod(step_shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
    rows = int(np.clip(TARGET_CHUNK_BYTES // step_bytes, 1, MAX_CHUNK_ROWS))
    return (rows, *step_shape)


class ReplayBuffer:
    """Episodes of equal-rate arrays in a zarr group. Build with ``create`` or ``open``, not directly.

    ``buffer[key]`` is the zarr array ``data/<key>`` [T, ...]; ``episode_ends`` [n_episodes] int64.
    """

    def __init__(self, root: zarr.Group, path: Path | None):
        self.root = root
        self.path = path
        self._ends_array = root["meta"][EPISODE_ENDS]
        self._episode_ends = np.asarray(self._ends_array[:], dtype=np.int64)
        # array handles cached: every zarr group lookup reads metadata from the store
        self._arrays: dict[str, zarr.Array] = dict(root["data"].arrays())
        self._meta_arrays = {k: v for k, v in root["meta"].arrays() if k != EPISODE_ENDS}

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, path: str | Path | None = None, *, overwrite: bool = False,
               attrs: Mapping[str, Any] | None = None) -> ReplayBuffer:
        """New empty store at ``path`` (zarr format 3), or in memory when ``path`` is None."""
        if path is None:
            store: Any = zarr.storage.MemoryStore()
        else:
            path = Path(path)
            if path.exists() and not overwrite:
                raise FileExistsError(f"ReplayBuffer.create: {path} exists; pass overwrite=True to "
                                      "replace it")
            store = str(path)
        root = zarr.open_group(store, mode="w")
        if attrs:  # before any array: a store killed while being created already says complete=False
            root.attrs.update(dict(attrs))
        root.require_group("data")
        root.require_group("meta").create_array(EPISODE_ENDS, shape=(0,), chunks=(MAX_CHUNK_ROWS,),
                                                dtype="int64")
        return cls(root, path)

    @classmethod
    def open(cls, path: str | Path, *, keys: Iterable[str] = (), mode: str = "r",
             allow_incomplete: bool = False) -> ReplayBuffer:
        """Open and validate an existing store (format 2 or 3).

        keys: data keys that must be present. mode: "r" (read-only) or "r+" (append).
        Raises FileNotFoundError if nothing is at ``path`` and ValueError, naming the key and the
        episode, if the store is malformed (see ``validate``).
        """
        if mode not in ("r", "r+"):
            raise ValueError(f"ReplayBuffer.open: mode must be 'r' or 'r+', got {mode!r}")
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"ReplayBuffer.open: no store at {path}")
        with reading(str(path), "the zarr store's metadata"):
            root = zarr.open_group(str(path), mode=mode)
        validate(root, keys, where=str(path), allow_incomplete=allow_incomplete)
        return cls(root, path)

    # ------------------------------------------------------------------ reading
    @property
    def episode_ends(self) -> np.ndarray:
        """[n_episodes] int64 cumulative episode ends (a copy)."""
        return self._episode_ends.copy()

    @property
    def n_episodes(self) -> int:
        return len(self._episode_ends)

    @property
    def n_steps(self) -> int:
        return int(self._episode_ends[-1]) if self.n_episodes else 0

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self._episode_ends, prepend=0)

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.root.attrs)

    def update_attrs(self, **attrs: Any) -> None:
        self.root.attrs.update(attrs)

    def keys(self) -> list[str]:
        """Sorted names of the ``data/`` arrays."""
        return sorted(self._arrays)

    def __contains__(self, key: str) -> bool:
        return key in self._arrays

    def __getitem__(self, key: str) -> zarr.Array:
        if key not in self._arrays:
            raise KeyError(f"ReplayBuffer has no data/{key}; keys are {self.keys()}")
        return self._arrays[key]

    def episode_slice(self, index: int) -> slice:
        if not -self.n_episodes <= index < self.n_episodes:
            raise IndexError(f"episode {index} out of range for {self.n_episodes} episodes")
        index %= self.n_episodes
        start = int(self._episode_ends[index - 1]) if index > 0 else 0
        return slice(start, int(self._episode_ends[index]))

    def get_episode(self, index: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """{key: [T_episode, ...]} for one episode."""
        rows = self.episode_slice(index)
        return {key: self[key][rows] for key in (self.keys() if keys is None else keys)}

    def read_episodes(self, episode_ids: Iterable[int], keys: Iterable[str]
                      ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The chosen episodes of ``keys``, concatenated in the given order, {key: [N, ...]}, and their new
        episode_ends [E] (a dataset split loads only its own episodes); a read error names the episode."""
        keys = tuple(keys)
        parts: dict[str, list[np.ndarray]] = {key: [] for key in keys}
        for episode in episode_ids:
            rows = self.episode_slice(int(episode))
            for key in keys:
                with reading(str(self.path), f"data/{key} of episode {int(episode)}"):
                    parts[key].append(self[key][rows])
        arrays = {key: np.concatenate(chunks) for key, chunks in parts.items()}
        episode_ends = np.cumsum([len(chunk) for chunk in parts[keys[0]]]).astype(np.int64)
        return arrays, episode_ends

    def load(self, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Whole arrays in memory, {key: [T, ...]} (training reads windows from these)."""
        return {key: self[key][:] for key in (self.keys() if keys is None else keys)}

    def episode_meta(self, key: str) -> np.ndarray:
        """Per-episode array ``meta/<key>`` [n_episodes]."""
        return self.root["meta"][key][:]

    # ------------------------------------------------------------------ writing
    def add_episode(self, episode: Mapping[str, np.ndarray],
                    meta: Mapping[str, int | float | bool] | None = None) -> None:
        """Append one episode: ``episode`` is {key: [T, ...]} with the same T for every key.

        The first episode fixes the keys, per-step shapes and dtypes; later ones must match.
        ``meta`` holds per-episode scalars stored as ``meta/<key>``. ``episode_ends`` is written
        last, so an interrupted append leaves lengths that ``validate`` rejects.
        """
        self.add_episodes([episode], None if meta is None else [meta])

    def add_episodes(self, episodes: Sequence[Mapping[str, np.ndarray]],
                     metas: Sequence[Mapping[str, int | float | bool]] | None = None) -> None:
        """Append several episodes with one write per array (each zarr append costs ~10 ms)."""
        episodes = [{key: np.asarray(value) for key, value in episode.items()} for episode in episodes]
        if not episodes:
            return
        metas = [{} for _ in episodes] if metas is None else [dict(m) for m in metas]
        if len(metas) != len(episodes) or any(sorted(m) != sorted(metas[0]) for m in metas):
            raise ValueError(f"add_episodes: need one meta dict with the same keys per episode; got {metas}")
        spec = {key: (array.shape[1:], array.dtype) for key, array in self._arrays.items()}
        spec = spec or {key: (value.shape[1:], value.dtype) for key, value in episodes[0].items()}
        lengths = [self._check_episode(episode, spec, self.n_episodes + i)
                   for i, episode in enumerate(episodes)]
        for key in spec:
            values = np.concatenate([episode[key] for episode in episodes])
            if key not in self._arrays:
                self._arrays[key] = self.root["data"].create_array(
                    key, shape=(0, *values.shape[1:]), dtype=values.dtype,
                    chunks=time_chunks(values.shape[1:], values.dtype))
            self._arrays[key].append(values, axis=0)
        for key in metas[0]:
            self._append_meta(key, np.asarray([m[key] for m in metas]))
        new_ends = self.n_steps + np.cumsum(lengths, dtype=np.int64)
        self._ends_array.append(new_ends)
        self._episode_ends = np.concatenate([self._episode_ends, new_ends])

    @staticmethod
    def _check_episode(arrays: dict[str, np.ndarray], spec: Mapping[str, tuple[tuple[int, ...], np.dtype]],
                       index: int) -> int:
        where = f"add_episode (episode {index})"
        if sorted(arrays) != sorted(spec):
            raise DatasetError(f"{where}: keys {sorted(arrays)} differ from the store's {sorted(spec)}")
        lengths = {key: (value.shape[0] if value.ndim else 0) for key, value in arrays.items()}
        length = next(iter(lengths.values()))
        if length == 0 or any(n != length for n in lengths.values()):
            raise DatasetError(f"{where}: every array needs the same positive length along axis 0; "
                             f"got {lengths}")
        for key, (step_shape, dtype) in spec.items():
            value = arrays[key]
            if value.shape[1:] != tuple(step_shape) or value.dtype != np.dtype(dtype):
                raise DatasetError(f"{where}: data/{key} expects steps of shape {tuple(step_shape)} {dtype}, "
                                 f"got {value.shape[1:]} {value.dtype}")
        return length

    def _append_meta(self, key: str, values: np.ndarray) -> None:
        if key == EPISODE_ENDS:
            raise ValueError(f"add_episode: meta key {EPISODE_ENDS!r} is reserved")
        if key not in self._meta_arrays:
            if self.n_episodes:
                raise ValueError(f"add_episode (episode {self.n_episodes}): meta/{key} is new but "
                                 f"{self.n_episodes} episodes were stored without it")
            self._meta_arrays[key] = self.root["meta"].create_array(key, shape=(0,), chunks=(MAX_CHUNK_ROWS,),
                                                                    dtype=values.dtype)
        array = self._meta_arrays[key]
        array.append(values.astype(array.dtype), axis=0)


# ---------------------------------------------------------------------- validation
def validate(root: zarr.Group, required_keys: Iterable[str] = (), *, where: str = "store",
             allow_incomplete: bool = False) -> None:
    """Raise ValueError naming the key and episode for the first defect found in ``root``."""
    if not allow_incomplete and root.attrs.get(COMPLETE_ATTR) is False:
        raise DatasetError(f"{where}: attribute {COMPLETE_ATTR}=False, the collection writing it was "
                         "interrupted; collect again (or pass allow_incomplete=True to inspect it)")
    for group in ("data", "meta"):
        if group not in root or not isinstance(root[group], zarr.Group):
            raise DatasetError(f"{where}: missing group {group}/ (Diffusion Policy layout needs data/ "
                             "and meta/)")
    if EPISODE_ENDS not in root["meta"]:
        raise DatasetError(f"{where}: missing meta/{EPISODE_ENDS}")
    ends = _validated_episode_ends(root["meta"][EPISODE_ENDS], where)
    data = root["data"]
    keys = sorted(data.array_keys())
    for key in required_keys:
        if key not in keys:
            raise DatasetError(f"{where}: missing required key data/{key}; present: {keys}")
    n_steps = int(ends[-1]) if len(ends) else 0
    lengths = {key: data[key].shape[0] for key in keys}
    if len(set(lengths.values())) > 1:
        short_key = min(lengths, key=lengths.get)
        episode = episode_of_row(ends, lengths[short_key])
        raise DatasetError(f"{where}: ragged data arrays {lengths}; data/{short_key} ends at row "
                         f"{lengths[short_key]}, inside episode {episode}")
    for key, length in lengths.items():
        if length != n_steps:
            episode = episode_of_row(ends, min(length, n_steps))
            raise DatasetError(f"{where}: data/{key} has {length} rows but the last episode end is {n_steps} "
                             f"(mismatch at episode {episode})")
    for key in keys:
        _check_key(data[key], key, ends, where)
    for key in root["meta"].array_keys():
        if key != EPISODE_ENDS and root["meta"][key].shape[0] != len(ends):
            raise DatasetError(f"{where}: meta/{key} has {root['meta'][key].shape[0]} rows for {len(ends)} "
                             f"episodes (first bad episode {min(root['meta'][key].shape[0], len(ends))})")


def _validated_episode_ends(array: zarr.Array, where: str) -> np.ndarray:
    ends = array[:]
    if ends.ndim != 1 or not np.issubdtype(ends.dtype, np.integer):
        raise DatasetError(f"{where}: meta/{EPISODE_ENDS} must be a 1-D integer array, got shape "
                         f"{ends.shape} {ends.dtype}")
    ends = ends.astype(np.int64)
    lengths = np.diff(ends, prepend=0)
    bad = np.flatnonzero(lengths <= 0)
    if len(bad):
        i = int(bad[0])
        previous = int(ends[i - 1]) if i else 0
        raise DatasetError(f"{where}: meta/{EPISODE_ENDS} must increase strictly; episode {i} ends at "
                         f"{int(ends[i])} after {previous} (length {int(lengths[i])})")
    return ends


def _check_key(array: zarr.Array, key: str, ends: np.ndarray, where: str) -> None:
    """Dtype of every key; values (finiteness) of the small per-step ones: images are too big to scan and
    their dtype is what matters."""
    image = key in IMAGE_KEYS
    per_step = int(np.prod(array.shape[1:], dtype=np.int64))
    with reading(where, f"data/{key}"):
        values = array[:] if per_step <= FINITE_CHECK_MAX_VALUES else np.empty((0, *array.shape[1:]),
                                                                                  array.dtype)
    check_values(values, f"data/{key}", ends, where, image=image)

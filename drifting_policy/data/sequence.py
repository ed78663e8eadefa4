"""Training windows over episodes, with Diffusion Policy's edge padding, and the episode split.

A window is ``prediction_horizon`` consecutive steps of one episode. Windows may start up to
``pad_before = obs_horizon - 1`` steps before the episode and end up to ``pad_after = action_horizon - 1``
steps after it; the missing steps repeat the episode's first / last step. The first window of an
episode therefore has ``obs_horizon`` observations whose last one is the episode's first step, and
the last window still has ``action_horizon`` real actions from its current step on. Rows are given as
buffer indices, clamped to the episode, so edge repetition is just indexing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch


def episode_split(n_episodes: int, val_ratio: float, max_train_episodes: int | None = None,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint (train_mask, val_mask) [n_episodes] bool, drawn with a seeded torch.Generator.

    As Diffusion Policy: with val_ratio > 0 at least one episode goes to validation and at least one
    stays for training; max_train_episodes then subsamples the training episodes (DP uses 90 on Push-T).
    """
    if n_episodes < 1:
        raise ValueError(f"episode_split: n_episodes must be >= 1, got {n_episodes}")
    if not 0.0 <= val_ratio < 1.0:
        raise ValueError(f"episode_split: val_ratio must be in [0, 1), got {val_ratio}")
    if max_train_episodes is not None and max_train_episodes < 1:
        raise ValueError(f"episode_split: max_train_episodes must be >= 1 or None, got {max_train_episodes}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n_episodes, generator=generator).numpy()
    n_val = 0
    if val_ratio > 0 and n_episodes > 1:
        n_val = min(max(1, round(n_episodes * val_ratio)), n_episodes - 1)
    val_mask = np.zeros(n_episodes, dtype=bool)
    val_mask[order[:n_val]] = True
    train_mask = np.zeros(n_episodes, dtype=bool)
    train_ids = order[n_val:]
    if max_train_episodes is not None:
        train_ids = train_ids[:max_train_episodes]
    train_mask[train_ids] = True
    return train_mask, val_mask


class SequenceSampler:
    """All padded windows of the selected episodes.

    episode_ends: [n_episodes] cumulative ends (ReplayBuffer layout).
    episode_mask: [n_episodes] bool, which episodes to draw windows from (default all).
    ``rows(i)`` -> [prediction_horizon] int64 buffer rows of window i; observations are the first
    ``obs_horizon`` of them (``obs_rows``), actions all of them.
    """

    def __init__(self, episode_ends: np.ndarray, prediction_horizon: int = 16, obs_horizon: int = 2,
                 action_horizon: int = 8, episode_mask: np.ndarray | None = None):
        _check_horizons(prediction_horizon, obs_horizon, action_horizon)
        self.prediction_horizon = prediction_horizon
        self.obs_horizon = obs_horizon
        self.action_horizon = action_horizon
        ends = np.asarray(episode_ends, dtype=np.int64)
        mask = np.ones(len(ends), dtype=bool)
        if episode_mask is not None:
            mask = np.asarray(episode_mask, dtype=bool)
        if mask.shape != ends.shape:
            raise ValueError(f"SequenceSampler: episode_mask has shape {mask.shape}, "
                             f"episode_ends {ends.shape}")
        starts, firsts, lasts, episodes = [], [], [], []
        for episode in np.flatnonzero(mask):
            first = int(ends[episode - 1]) if episode else 0
            length = int(ends[episode]) - first
            # window offsets relative to the episode start, as DP's create_indices
            offsets = np.arange(-self.pad_before, length - prediction_horizon + self.pad_after + 1)
            starts.append(first + offsets)
            firsts.append(np.full(len(offsets), first))
            lasts.append(np.full(len(offsets), first + length - 1))
            episodes.append(np.full(len(offsets), episode))
        self._starts, self._firsts, self._lasts = _concat(starts), _concat(firsts), _concat(lasts)
        self.window_episodes = _concat(episodes)  # [n_windows] episode index of each window

    @property
    def pad_before(self) -> int:
        return self.obs_horizon - 1

    @property
    def pad_after(self) -> int:
        return self.action_horizon - 1

    def __len__(self) -> int:
        return len(self._starts)

    def rows(self, index: int) -> np.ndarray:
        """[prediction_horizon] buffer rows of window ``index``, clamped to its episode (edge padding)."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        steps = self._starts[index] + np.arange(self.prediction_horizon)
        return np.clip(steps, self._firsts[index], self._lasts[index])

    def sample(self, arrays: Mapping[str, np.ndarray], index: int,
               obs_keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """{key: array[rows]}: [obs_horizon, ...] for obs_keys, [prediction_horizon, ...] for the rest."""
        rows = self.rows(index)
        return {key: array[rows[: self.obs_horizon] if key in obs_keys else rows]
                for key, array in arrays.items()}


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _check_horizons(prediction_horizon: int, obs_horizon: int, action_horizon: int) -> None:
    for name, value in (("prediction_horizon", prediction_horizon), ("obs_horizon", obs_horizon),
                        ("action_horizon", action_horizon)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if obs_horizon - 1 + action_horizon > prediction_horizon:
        raise ValueError(f"executed actions [obs_horizon - 1, obs_horizon - 1 + action_horizon) = "
                         f"[{obs_horizon - 1}, {obs_horizon - 1 + action_horizon}) must lie inside "
                         f"prediction_horizon={prediction_horizon}; raise prediction_horizon or lower the "
                         "others")


class WindowDataset(torch.utils.data.Dataset):
    """Windows of in-memory episode arrays: what every dataset of the project shares.

    A subclass sets ``arrays`` ({key: [N, ...]} for its episodes, concatenated, plus "action"), ``obs_keys``,
    ``sampler`` (a :class:`SequenceSampler` over those arrays) and ``obs_horizon``, and says which keys are
    images (``is_image_key``).
    Items: {"obs": {key: [obs_horizon, ...]}, "action": [prediction_horizon, A]}.
    """

    arrays: dict[str, np.ndarray]
    obs_keys: tuple[str, ...]
    sampler: SequenceSampler
    obs_horizon: int
    split: str

    def is_image_key(self, key: str) -> bool:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.sampler)

    def __getitem__(self, index: int) -> dict:
        rows = self.sampler.rows(index)  # [prediction_horizon]
        obs_rows = rows[: self.obs_horizon]  # [obs_horizon]
        return {"obs": {key: self.arrays[key][obs_rows] for key in self.obs_keys},
                "action": self.arrays["action"][rows]}

    @property
    def shape_meta(self) -> dict:
        """{"obs": {key: {"shape": per-step shape, "type": "low_dim" | "rgb"}}, "action": {"shape": (A,)}}."""
        obs = {key: {"shape": tuple(self.arrays[key].shape[1:]),
                     "type": "rgb" if self.is_image_key(key) else "low_dim"} for key in self.obs_keys}
        return {"obs": obs, "action": {"shape": tuple(self.arrays["action"].shape[1:])}}

    def normalizer_data(self) -> dict[str, np.ndarray]:
        """{key: [N, ...]} all actions and low-dim observations of the train split, for Normalizer.fit."""
        if self.split != "train":
            raise ValueError("normalizer_data: fit the normaliser on the train split, not 'val'")
        return {key: value for key, value in self.arrays.items() if not self.is_image_key(key)}

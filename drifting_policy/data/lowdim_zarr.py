"""Windows of a replay buffer whose observations are low-dim ``data/<key>`` arrays under the env's own names.

Any task whose collector stores each observation key of the env as ``data/<key>`` [T, ...] next to
``data/action`` [T, A] (block pushing: ``block_pose`` [T, 2, 3], ``effector_pos`` [T, 2], ...) trains from
this one class: samples are ``{"obs": {key: float32 [obs_horizon, ...]}, "action": float32
[prediction_horizon, A]}`` for the requested ``obs_keys``. Push-T, whose store keeps Diffusion Policy's own
key names, has its own class (``drifting_policy.data.pusht``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from drifting_policy.data.replay_buffer import ReplayBuffer
from drifting_policy.data.sequence import SequenceSampler, WindowDataset, episode_split

SPLITS = ("train", "val")


class LowDimZarrDataset(WindowDataset):
    """Windows of one split (by episode, ``episode_split``) of a low-dim replay buffer; only the episodes of
    that split are loaded. Train and val datasets built with the same arguments share no episode."""

    def __init__(self, zarr_path: str | Path, obs_keys: Sequence[str], obs_horizon: int = 2,
                 action_horizon: int = 8, prediction_horizon: int = 16, val_ratio: float = 0.02,
                 max_train_episodes: int | None = None, seed: int = 42, split: str = "train"):
        obs_keys = tuple(obs_keys)
        if split not in SPLITS:
            raise ValueError(f"LowDimZarrDataset: split must be one of {SPLITS}, got {split!r}")
        if not obs_keys or "action" in obs_keys:
            raise ValueError(f"LowDimZarrDataset: obs_keys={list(obs_keys)}; expected one or more data/ keys "
                             "other than 'action'")
        self.zarr_path, self.split = Path(zarr_path), split
        self._kwargs = dict(zarr_path=zarr_path, obs_keys=obs_keys, obs_horizon=obs_horizon,
                            action_horizon=action_horizon, prediction_horizon=prediction_horizon,
                            val_ratio=val_ratio, max_train_episodes=max_train_episodes, seed=seed)
        buffer = ReplayBuffer.open(self.zarr_path, keys=(*obs_keys, "action"))
        train_mask, val_mask = episode_split(buffer.n_episodes, val_ratio, max_train_episodes, seed)
        self.episode_ids = np.flatnonzero(train_mask if split == "train" else val_mask)
        if len(self.episode_ids) == 0:
            raise ValueError(f"LowDimZarrDataset: split {split!r} of {self.zarr_path} has no episodes "
                             f"({buffer.n_episodes} episodes, val_ratio={val_ratio}); raise val_ratio or "
                             "collect more")
        raw, episode_ends = buffer.read_episodes(self.episode_ids, (*obs_keys, "action"))
        self.arrays = {key: value.astype(np.float32) for key, value in raw.items()}  # {key: [N, ...]}
        self.obs_keys = obs_keys
        self.sampler = SequenceSampler(episode_ends, prediction_horizon, obs_horizon, action_horizon)
        self.obs_horizon, self.action_horizon = obs_horizon, action_horizon
        self.prediction_horizon = prediction_horizon

    def is_image_key(self, key: str) -> bool:
        return False

    def get_validation_dataset(self) -> LowDimZarrDataset:
        return LowDimZarrDataset(**self._kwargs, split="val")

"""A local LeRobot v3.0 dataset folder as a torch Dataset of raw training windows (``task=lerobot``).

Samples have the layout of the other datasets, with the task's observation keys::

    {"obs": {key: [obs_horizon, *shape]}, "action": float32 [prediction_horizon, action_dim]}

``features`` maps each observation key of the task to a LeRobot feature name of ``meta/info.json``
(e.g. ``{"agent_pos": "observation.state", "image": "observation.image"}``); ``action_feature`` names the
action. Low-dim features are float32, reshaped to the task's ``shape_meta`` shape when the sizes agree
(LeRobot's Push-T ``observation.environment_state`` [18] -> ``keypoint`` [9, 2]); camera features
(dtype video or image) are uint8 [H, W, 3], decoded with PyAV. The folder is read once into memory
(``read_lerobot``); the train and val datasets share it, windows come from ``SequenceSampler``
(Diffusion Policy's padding) and the split is by episode (``episode_split``), exactly as for zarr.

    python -m drifting_policy.data.lerobot export --from data/pusht/pusht_scripted.zarr --out <folder>

converts a project store to a LeRobot folder (``drifting_policy.data.lerobot_export``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from drifting_policy.data.lerobot_format import INFO_PATH, LeRobotData, read_lerobot
from drifting_policy.data.sequence import SequenceSampler, WindowDataset, episode_split
from drifting_policy.data.validation import check_values

SPLITS = ("train", "val")


class LeRobotFolderDataset(WindowDataset):
    """Windows of one split of a local LeRobot folder; see the module docstring for the sample layout."""

    def __init__(self, root: str | Path, features: Mapping[str, str], action_feature: str = "action",
                 shape_meta: Mapping[str, Any] | None = None, obs_horizon: int = 2, action_horizon: int = 8,
                 prediction_horizon: int = 16, val_ratio: float = 0.02, max_train_episodes: int | None = None,
                 seed: int = 42, split: str = "train", progress: bool = True,
                 data: LeRobotData | None = None):
        if split not in SPLITS:
            raise ValueError(f"LeRobotFolderDataset: split must be one of {SPLITS}, got {split!r}")
        if not features:
            raise ValueError("LeRobotFolderDataset: features is empty; map observation keys to LeRobot "
                             "features, e.g. task.dataset.features.agent_pos=observation.state")
        self.features, self.action_feature = dict(features), action_feature
        self.obs_keys, self.split = tuple(self.features), split
        self._kwargs = dict(root=root, features=self.features, action_feature=action_feature,
                            shape_meta=shape_meta, obs_horizon=obs_horizon, action_horizon=action_horizon,
                            prediction_horizon=prediction_horizon, val_ratio=val_ratio,
                            max_train_episodes=max_train_episodes, seed=seed, progress=progress)
        names = list(dict.fromkeys([*self.features.values(), action_feature]))
        self.data = data if data is not None else read_lerobot(root, names, progress=progress)
        self.root = self.data.root
        self.arrays = self._arrays(shape_meta or {})
        train_mask, val_mask = episode_split(len(self.data.episode_ends), val_ratio, max_train_episodes, seed)
        mask = train_mask if split == "train" else val_mask
        self.episode_ids = np.flatnonzero(mask)
        if len(self.episode_ids) == 0:
            raise ValueError(f"LeRobotFolderDataset: split {split!r} of {self.root} has no episodes "
                             f"({len(mask)} episodes, val_ratio={val_ratio}); raise val_ratio or add "
                             "episodes")
        self.sampler = SequenceSampler(self.data.episode_ends, prediction_horizon, obs_horizon,
                                       action_horizon, episode_mask=mask)
        self.obs_horizon, self.action_horizon = obs_horizon, action_horizon
        self.prediction_horizon = prediction_horizon

    def _arrays(self, shape_meta: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """{obs key | "action": [N, ...]} in the task's shapes, checked (floats finite, images uint8)."""
        obs_meta = shape_meta.get("obs", {})
        arrays = {}
        for key, name in [*self.features.items(), ("action", self.action_feature)]:
            values = self.data.arrays[name]
            if not self.data.is_camera(name):
                wanted = obs_meta.get(key, {}).get("shape") if key != "action" else None
                values = _reshaped(values, wanted, key, name, self.data.root)
            check_values(values, name, self.data.episode_ends, str(self.data.root),
                         image=self.data.is_camera(name))
            arrays[key] = values
        return arrays

    @property
    def fps(self) -> int:
        return self.data.fps

    def is_image_key(self, key: str) -> bool:
        return key in self.features and self.data.is_camera(self.features[key])

    def normalizer_data(self) -> dict[str, np.ndarray]:
        """{key: [N, ...]} actions and low-dim observations of the train episodes, for Normalizer.fit (the
        dataset's own meta/stats.json is not used)."""
        if self.split != "train":
            raise ValueError("normalizer_data: fit the normaliser on the train split, not 'val'")
        ends = self.data.episode_ends
        rows = np.concatenate([np.arange(ends[e - 1] if e else 0, ends[e]) for e in self.episode_ids])
        return {key: values[rows] for key, values in self.arrays.items()
                if key == "action" or not self.data.is_camera(self.features[key])}

    def get_validation_dataset(self) -> LeRobotFolderDataset:
        return LeRobotFolderDataset(**self._kwargs, split="val", data=self.data)


def _reshaped(values: np.ndarray, shape: Any, key: str, name: str, root: Path) -> np.ndarray:
    """[N, *shape] when the task gives a shape with as many values per frame as the feature has."""
    if shape is None:
        return values
    shape = tuple(int(n) for n in shape)
    size = int(np.prod(values.shape[1:], dtype=np.int64))
    if int(np.prod(shape, dtype=np.int64)) != size:
        raise ValueError(f"task.shape_meta.obs.{key}.shape={list(shape)} but LeRobot feature {name} has "
                         f"{size} values per frame ({root / INFO_PATH}: shape {list(values.shape[1:])}); set "
                         f"task.shape_meta.obs.{key}.shape={list(values.shape[1:])} or map {key} to another "
                         "feature")
    return values.reshape(len(values), *shape)


if __name__ == "__main__":
    from drifting_policy.data.lerobot_export import main

    main()

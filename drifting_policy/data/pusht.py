"""Push-T demonstrations as a torch Dataset of raw training windows.

Reads a replay buffer in Diffusion Policy's layout (``data/state`` [T, 5], ``data/keypoint`` [T, 9, 2],
``data/img`` [T, 96, 96, 3], ``data/action`` [T, 2], ``meta/episode_ends``) and yields samples whose
observation keys are exactly the env's for the chosen ``obs_type``:

- ``keypoints``: ``keypoint`` float32 [obs_horizon, 9, 2], ``agent_pos`` float32 [obs_horizon, 2]
- ``state``:     ``state`` float32 [obs_horizon, 5]
- ``image``:     ``image`` uint8 [obs_horizon, 96, 96, 3], ``agent_pos`` float32 [obs_horizon, 2]

plus ``action`` float32 [prediction_horizon, 2]. Torch's default collate adds the leading batch axis B.
Only the episodes of the requested split are loaded into memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drifting_policy.data.replay_buffer import ReplayBuffer
from drifting_policy.data.sequence import SequenceSampler, WindowDataset, episode_split

OBS_TYPES = ("keypoints", "state", "image")
SPLITS = ("train", "val")
# buffer keys each obs_type needs (agent_pos is state[:, :2])
_BUFFER_KEYS = {"keypoints": ("keypoint", "state"), "state": ("state",), "image": ("img", "state")}
_IMAGE_KEYS = ("image",)


class PushTDataset(WindowDataset):
    """Windows of one split of a Push-T replay buffer; see the module docstring for sample layout.

    The split is by episode (``episode_split``: ``val_ratio``, ``max_train_episodes``, ``seed``), so the
    train and val datasets built with the same arguments never share an episode.
    """

    def __init__(self, zarr_path: str | Path, obs_type: str = "keypoints", obs_horizon: int = 2,
                 action_horizon: int = 8, prediction_horizon: int = 16, val_ratio: float = 0.02,
                 max_train_episodes: int | None = None, seed: int = 42, split: str = "train"):
        if obs_type not in OBS_TYPES:
            raise ValueError(f"PushTDataset: obs_type must be one of {OBS_TYPES}, got {obs_type!r}")
        if split not in SPLITS:
            raise ValueError(f"PushTDataset: split must be one of {SPLITS}, got {split!r}")
        self.zarr_path = Path(zarr_path)
        self.obs_type, self.split = obs_type, split
        self._kwargs = dict(zarr_path=zarr_path, obs_type=obs_type, obs_horizon=obs_horizon,
                            action_horizon=action_horizon, prediction_horizon=prediction_horizon,
                            val_ratio=val_ratio, max_train_episodes=max_train_episodes, seed=seed)
        buffer = ReplayBuffer.open(self.zarr_path, keys=(*_BUFFER_KEYS[obs_type], "action"))
        train_mask, val_mask = episode_split(buffer.n_episodes, val_ratio, max_train_episodes, seed)
        self.episode_ids = np.flatnonzero(train_mask if split == "train" else val_mask)
        if len(self.episode_ids) == 0:
            raise ValueError(f"PushTDataset: split {split!r} of {self.zarr_path} has no episodes "
                             f"({buffer.n_episodes} episodes, val_ratio={val_ratio}); raise val_ratio or "
                             "collect more")
        self.arrays, episode_ends = _load_episodes(buffer, obs_type, self.episode_ids)
        self.obs_keys = tuple(key for key in self.arrays if key != "action")
        self.sampler = SequenceSampler(episode_ends, prediction_horizon, obs_horizon, action_horizon)
        self.obs_horizon, self.action_horizon = obs_horizon, action_horizon
        self.prediction_horizon = prediction_horizon

    def is_image_key(self, key: str) -> bool:
        return key in _IMAGE_KEYS

    def get_validation_dataset(self) -> PushTDataset:
        return PushTDataset(**self._kwargs, split="val")


def _load_episodes(buffer: ReplayBuffer, obs_type: str,
                   episode_ids: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Arrays of the chosen episodes in env naming, concatenated, and their new episode_ends."""
    raw, episode_ends = buffer.read_episodes(episode_ids, (*_BUFFER_KEYS[obs_type], "action"))
    state = raw["state"].astype(np.float32)  # [T, 5]
    arrays: dict[str, np.ndarray] = {}
    if obs_type == "keypoints":
        arrays["keypoint"] = raw["keypoint"].astype(np.float32)  # [T, 9, 2]
        arrays["agent_pos"] = np.ascontiguousarray(state[:, :2])  # [T, 2]
    elif obs_type == "state":
        arrays["state"] = state
    else:
        arrays["image"] = _as_uint8_image(raw["img"])  # [T, 96, 96, 3]
        arrays["agent_pos"] = np.ascontiguousarray(state[:, :2])
    arrays["action"] = raw["action"].astype(np.float32)  # [T, 2]
    return arrays, episode_ends


def _as_uint8_image(images: np.ndarray) -> np.ndarray:
    """uint8 HWC; Diffusion Policy's own store keeps float32 images in [0, 255]."""
    if images.dtype == np.uint8:
        return images
    images = images.astype(np.float32)
    if images.size and images.max() <= 1.0:  # a [0, 1] float store
        images = images * 255.0
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)

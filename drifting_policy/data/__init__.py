"""Demonstration data: zarr replay buffer, robomimic hdf5 layout, LeRobot folders, training windows, datasets.

Names are imported on first use (PEP 562), so reading or writing a replay buffer (e.g. in
``drifting-collect``) does not import torch (~1 GB RSS, seconds of start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "LeRobotFolderDataset": "drifting_policy.data.lerobot",
    "LowDimZarrDataset": "drifting_policy.data.lowdim_zarr",
    "PushTDataset": "drifting_policy.data.pusht",
    "ReplayBuffer": "drifting_policy.data.replay_buffer",
    "RobomimicDataset": "drifting_policy.data.robomimic",
    "SequenceSampler": "drifting_policy.data.sequence",
    "episode_split": "drifting_policy.data.sequence",
}

__all__ = ["LeRobotFolderDataset", "LowDimZarrDataset", "PushTDataset", "ReplayBuffer", "RobomimicDataset",
           "SequenceSampler", "episode_split"]

if TYPE_CHECKING:
    from drifting_policy.data.lerobot import LeRobotFolderDataset
    from drifting_policy.data.lowdim_zarr import LowDimZarrDataset
    from drifting_policy.data.pusht import PushTDataset
    from drifting_policy.data.replay_buffer import ReplayBuffer
    from drifting_policy.data.robomimic import RobomimicDataset
    from drifting_policy.data.sequence import SequenceSampler, episode_split


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'drifting_policy.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

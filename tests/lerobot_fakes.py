"""Tiny demonstration stores for the LeRobot tests: a Push-T-layout zarr and a LeRobot folder written by the
project's writer, small enough (a few episodes, 16x16 images) to build in well under a second."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from drifting_policy.data.lerobot_writer import LeRobotWriter
from drifting_policy.data.replay_buffer import ReplayBuffer

LENGTHS = (9, 12, 10)  # episode lengths; >= prediction_horizon - action_horizon + 1 = 9 for the defaults
IMAGE_SIZE = 16
FPS = 10


def frames(length: int, episode: int) -> np.ndarray:
    """uint8 [T, 16, 16, 3]: a smooth gradient with a bright 4x4 square moving one pixel per step."""
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    base = np.stack([8 * x, 8 * y, np.full_like(x, 40 * episode)], axis=-1).astype(np.uint8)
    out = np.repeat(base[None], length, axis=0)
    for t in range(length):
        corner = t % (IMAGE_SIZE - 4)
        out[t, 4:8, corner:corner + 4] = 250
    return out


def episode_arrays(length: int, episode: int) -> dict[str, np.ndarray]:
    """Push-T zarr keys; values encode (episode, step) so any misplaced row is visible."""
    step = np.arange(length, dtype=np.float32)
    code = 100.0 * episode + step  # [T]
    state = np.stack([code, code + 0.5, code + 0.25, -code, 0.01 * step], axis=1).astype(np.float32)
    keypoint = (code[:, None, None] + np.arange(18, dtype=np.float32).reshape(1, 9, 2)).astype(np.float32)
    action = np.stack([code + 0.75, -code - 0.75], axis=1).astype(np.float32)
    return {"state": state, "keypoint": keypoint, "img": frames(length, episode), "action": action}


def write_pusht_zarr(path: Path, lengths=LENGTHS, image: bool = True) -> Path:
    buffer = ReplayBuffer.create(path, attrs={"task": "pusht", "seed": 0, "n_seeds": len(lengths),
                                              "expert_version": "test"})
    for episode, length in enumerate(lengths):
        arrays = episode_arrays(length, episode)
        if not image:
            del arrays["img"]
        buffer.add_episode(arrays)
    return path


def write_lerobot(path: Path, lengths=LENGTHS, image: bool = True) -> Path:
    """A LeRobot folder with observation.state [2], observation.image (video 16x16) and action [2]."""
    features = {"observation.state": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
                "action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]}}
    if image:
        features["observation.image"] = {"dtype": "video", "shape": [IMAGE_SIZE, IMAGE_SIZE, 3],
                                         "names": ["height", "width", "channels"]}
    writer = LeRobotWriter(path, FPS, features, task="test task")
    for episode, length in enumerate(lengths):
        arrays = episode_arrays(length, episode)
        item = {"observation.state": arrays["state"][:, :2], "action": arrays["action"]}
        if image:
            item["observation.image"] = arrays["img"]
        writer.add_episode(item)
    return writer.finish({"seed": 0, "n_seeds": len(lengths)})

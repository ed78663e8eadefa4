"""Headless top-down frames of block pushing with OpenCV (no GL needed, unlike MuJoCo's renderer).

The frame shows a 1 m square centred on (0.4, 0): x to the right, y up, so the cubes are pushed upwards.
"""

from __future__ import annotations

import cv2
import numpy as np

from envs.blockpush.scene import BLOCK_HALF, GOAL_TOLERANCE, PUSHER_RADIUS, WORKSPACE_HIGH, WORKSPACE_LOW

VIEW_CENTRE = np.array([0.4, 0.0])
VIEW_SIZE = 1.0  # metres across the frame
BACKGROUND = (255, 255, 255)
WORKSPACE_COLOR = (211, 211, 211)
ZONE_COLORS = ((144, 238, 144), (173, 216, 230))
BLOCK_COLORS = ((102, 102, 255), (255, 128, 51))
PUSHER_COLOR = (51, 51, 51)
ACTION_COLOR = (255, 0, 0)
SHIFT = 4  # cv2 fixed-point bits
ONE = 1 << SHIFT
_CORNERS = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * BLOCK_HALF


class BlockPushRenderer:
    """RGB uint8 frames [size, size, 3]; the workspace outline is cached, zones move between episodes."""

    def __init__(self, size: int):
        self.size = size
        self.scale = size / VIEW_SIZE
        self.background = np.full((size, size, 3), BACKGROUND, dtype=np.uint8)
        corners = self._fixed(np.array([WORKSPACE_LOW, [WORKSPACE_HIGH[0], WORKSPACE_LOW[1]], WORKSPACE_HIGH,
                                        [WORKSPACE_LOW[0], WORKSPACE_HIGH[1]]]))
        cv2.polylines(self.background, [corners], True, WORKSPACE_COLOR, 1, cv2.LINE_8, SHIFT)

    def _fixed(self, xy: np.ndarray) -> np.ndarray:
        """World metres [..., 2] -> int32 fixed-point pixel coordinates [N, 2] (x right, y up)."""
        xy = np.reshape(xy, (-1, 2))
        col = (xy[:, 0] - VIEW_CENTRE[0] + VIEW_SIZE / 2) * self.scale
        row = (VIEW_SIZE / 2 - (xy[:, 1] - VIEW_CENTRE[1])) * self.scale
        return np.round(np.stack([col, row], axis=-1) * ONE).astype(np.int32)

    def draw(self, block_poses, target_poses, pusher_xy, action=None) -> np.ndarray:
        """block_poses [2, 3], target_poses [2, 3], pusher_xy [2], optional commanded target [2]."""
        img = self.background.copy()
        for (x, y, _), color in zip(target_poses, ZONE_COLORS, strict=True):
            centre = tuple(int(v) for v in self._fixed(np.array([x, y]))[0])
            cv2.circle(img, centre, round(GOAL_TOLERANCE * self.scale * ONE), color, -1, cv2.LINE_8, SHIFT)
        for (x, y, yaw), color in zip(block_poses, BLOCK_COLORS, strict=True):
            c, s = np.cos(yaw), np.sin(yaw)
            corners = _CORNERS @ np.array([[c, s], [-s, c]]) + np.array([x, y])
            cv2.fillPoly(img, [self._fixed(corners)], color, cv2.LINE_8, SHIFT)
        centre = tuple(int(v) for v in self._fixed(np.asarray(pusher_xy))[0])
        cv2.circle(img, centre, round(PUSHER_RADIUS * self.scale * ONE), PUSHER_COLOR, -1, cv2.LINE_8, SHIFT)
        if action is not None:
            point = tuple(int(v) // ONE for v in self._fixed(np.asarray(action))[0])
            cv2.drawMarker(img, point, ACTION_COLOR, cv2.MARKER_CROSS, max(3, self.size // 24), 1)
        return img

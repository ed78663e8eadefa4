"""Headless Push-T rendering with OpenCV, in Diffusion Policy's colours and drawing order.

DP draws with pygame at 512 px (goal, walls, agent, block; each box of the T filled with a lighter
shade and outlined 2 px in its own colour) and resizes with cv2. We draw straight at the target size
with sub-pixel polygon coordinates, which looks the same at 96 px and is several times faster.
"""

from __future__ import annotations

import cv2
import numpy as np

from envs.pusht.geometry import BAR_VERTS, GOAL_POSE, STEM_VERTS, WINDOW_SIZE, local_to_world

WHITE = (255, 255, 255)
GOAL_COLOR = (144, 238, 144)  # pygame LightGreen
WALL_COLOR = (211, 211, 211)  # LightGray
AGENT_COLOR = (65, 105, 225)  # RoyalBlue
AGENT_FILL = (78, 126, 255)  # DP's light_color: min(1.2 * c, 255)
BLOCK_COLOR = (119, 136, 153)  # LightSlateGray (outline)
BLOCK_FILL = (142, 163, 183)  # light_color(LightSlateGray)
ACTION_COLOR = (255, 0, 0)
WALLS = (((5, 506), (5, 5)), ((5, 5), (506, 5)), ((506, 5), (506, 506)), ((5, 506), (506, 506)))
AGENT_RADIUS = 15.0
SHIFT = 4  # cv2 fixed-point bits: coordinates in 1/16 px
ONE = 1 << SHIFT


class PushTRenderer:
    """Draws RGB uint8 frames [size, size, 3] of a Push-T state; the static background is cached."""

    def __init__(self, size: int, goal_pose=GOAL_POSE):
        if size < 16:
            raise ValueError(f"render size={size} is too small; expected >= 16 (96 for observations)")
        self.size = size
        self.scale = size / WINDOW_SIZE
        self.line = max(1, round(4 * self.scale))  # DP's 2 px radius outline at 512 px
        self.background = np.full((size, size, 3), WHITE, dtype=np.uint8)
        for verts in (BAR_VERTS, STEM_VERTS):
            cv2.fillPoly(self.background, [self._fixed(local_to_world(np.array(verts), goal_pose))],
                         GOAL_COLOR, lineType=cv2.LINE_8, shift=SHIFT)
        for a, b in WALLS:
            cv2.line(self.background, self._fixed(np.array(a))[0], self._fixed(np.array(b))[0],
                     WALL_COLOR, self.line, cv2.LINE_8, SHIFT)

    def _fixed(self, points: np.ndarray) -> np.ndarray:
        """World pixels [..., 2] -> int32 fixed-point image coords [N, 2]."""
        return np.round(np.reshape(points, (-1, 2)) * (self.scale * ONE)).astype(np.int32)

    def draw(self, agent_pos, block_pose, action=None) -> np.ndarray:
        """agent_pos [2], block_pose (x, y, angle), optional action [2] marked with a red cross."""
        img = self.background.copy()
        centre = tuple(int(v) for v in self._fixed(np.asarray(agent_pos, dtype=np.float64))[0])
        cv2.circle(img, centre, round(AGENT_RADIUS * self.scale * ONE), AGENT_COLOR, -1, cv2.LINE_8, SHIFT)
        inner = max(0.0, AGENT_RADIUS - 4) * self.scale * ONE
        cv2.circle(img, centre, round(inner), AGENT_FILL, -1, cv2.LINE_8, SHIFT)
        for verts in (BAR_VERTS, STEM_VERTS):
            poly = self._fixed(local_to_world(np.array(verts), block_pose))
            cv2.fillPoly(img, [poly], BLOCK_FILL, cv2.LINE_8, SHIFT)
            cv2.polylines(img, [poly], True, BLOCK_COLOR, self.line, cv2.LINE_8, SHIFT)
        if action is not None and np.all(np.isfinite(action)):
            coord = tuple(int(v) for v in np.asarray(action, dtype=np.float64) * self.scale)
            cv2.drawMarker(img, coord, ACTION_COLOR, cv2.MARKER_CROSS,
                           max(1, int(8 / 96 * self.size)), max(1, int(1 / 96 * self.size)))
        return img

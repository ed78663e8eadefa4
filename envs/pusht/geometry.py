"""Push-T geometry: the T block, its keypoints, poses and goal coverage.

Conventions (Diffusion Policy's): pixels, y pointing down, a pose is (x, y, angle) of the block's body
origin, which is the middle of the top bar's upper edge; the bar spans local y in [0, 30], the stem
[30, 120]. The body's centre of gravity is local (0, 45) (the mean of the two boxes' centroids, not
the area centroid), so rotating the body about its centre of gravity moves the origin.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import Polygon

WINDOW_SIZE = 512
GOAL_POSE = np.array([256.0, 256.0, np.pi / 4])
SUCCESS_THRESHOLD = 0.95

SCALE = 30.0  # DP's add_tee(scale=30, length=4)
BAR_VERTS = ((-60.0, 30.0), (60.0, 30.0), (60.0, 0.0), (-60.0, 0.0))  # DP's vertices1 order
STEM_VERTS = ((-15.0, 30.0), (-15.0, 120.0), (15.0, 120.0), (15.0, 30.0))  # DP's vertices2 order
BLOCK_COG = (0.0, 45.0)
# Outline of the union, counter-clockwise on screen (y down), starting at the bar's upper-left corner.
T_OUTLINE = np.array(
    [(-60, 0), (-60, 30), (-15, 30), (-15, 120), (15, 120), (15, 30), (60, 30), (60, 0)], dtype=np.float64
)  # [8, 2]
T_AREA = 120.0 * 30.0 + 30.0 * 90.0

# Diffusion Policy builds its 9 keypoints by farthest-point sampling over the pixels pygame draws for
# the T (fill plus a 2 px outline), seeded with default_rng(0), then adds a uniform(0, 1) shift.
# Without pygame we rasterise the same mask (T buffered by 2 px) and run the same procedure; see
# `dp_style_keypoints`. A test checks that this table equals what the function returns.
BLOCK_KEYPOINTS = np.array(
    [
        [-9.7, 90.0],
        [61.0, -0.2],
        [-60.1, -0.4],
        [0.7, 24.5],
        [16.9, 121.8],
        [16.0, 60.9],
        [-39.0, 31.7],
        [38.2, 29.9],
        [-24.5, -0.7],
    ]
)  # [9, 2], local frame; rounded to 0.1 px


def rotation(angle: float) -> np.ndarray:
    """[2, 2] rotation matrix (y down, so positive angles turn clockwise on screen)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def local_to_world(points: np.ndarray, pose) -> np.ndarray:
    """points [..., 2] in the block frame -> [..., 2] in pixels, for pose (x, y, angle)."""
    return points @ rotation(pose[2]).T + np.asarray(pose[:2], dtype=np.float64)


def world_to_local(points: np.ndarray, pose) -> np.ndarray:
    """Inverse of `local_to_world`."""
    return (np.asarray(points) - np.asarray(pose[:2], dtype=np.float64)) @ rotation(pose[2])


def block_outline(pose) -> np.ndarray:
    """[8, 2] world vertices of the T outline."""
    return local_to_world(T_OUTLINE, pose)


def block_polygon(pose) -> Polygon:
    return Polygon(block_outline(pose))


def block_keypoints(pose) -> np.ndarray:
    """[9, 2] world positions of Diffusion Policy-style block keypoints."""
    return local_to_world(BLOCK_KEYPOINTS, pose)


class CoverageMeter:
    """coverage = area(goal ∩ block) / area(goal), the goal polygon prepared once."""

    def __init__(self, goal_pose=GOAL_POSE):
        self.goal = block_polygon(goal_pose)
        shapely.prepare(self.goal)
        self.goal_area = self.goal.area

    def __call__(self, pose) -> float:
        block = block_polygon(pose)
        return float(shapely.intersection(self.goal, block).area / self.goal_area)


def dp_style_keypoints(n_keypoints: int = 9, seed: int = 0) -> np.ndarray:
    """Recompute `BLOCK_KEYPOINTS`: farthest-point sampling over the rendered T mask at (256, 300)."""
    ys, xs = np.mgrid[-8:130, -70:71]
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=-1).astype(np.float64)  # [P, 2] local coords
    t_shape = shapely.union(Polygon(BAR_VERTS), Polygon(STEM_VERTS)).buffer(2.0)
    inside = shapely.contains_xy(t_shape, pixels[:, 0], pixels[:, 1])
    coords = pixels[inside]
    rng = np.random.default_rng(seed)
    chosen = [int(rng.choice(len(coords)))]
    min_dist = np.linalg.norm(coords - coords[chosen[0]], axis=-1)
    for _ in range(n_keypoints - 1):
        nxt = int(np.argmax(min_dist))
        chosen.append(nxt)
        min_dist = np.minimum(min_dist, np.linalg.norm(coords - coords[nxt], axis=-1))
    return coords[chosen] + rng.uniform(0, 1, size=(n_keypoints, 2))

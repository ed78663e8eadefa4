"""Geometry for the block-pushing expert: clearance tests and shortest paths around the cubes.

Obstacles are disks (a cube's circumscribed circle plus the pusher's radius and a margin). Paths run
through a small visibility graph: the start, the goal and a ring of via-points around each obstacle.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from envs.blockpush.scene import BLOCK_HALF, WORKSPACE_HIGH, WORKSPACE_LOW

N_RING = 8  # via-points per obstacle
RING_FACTOR = 1.35  # ring radius / obstacle radius: ring chords (cos(pi/8) * 1.35 > 1) clear the disk


def segment_distance(a: np.ndarray, b: np.ndarray, points: np.ndarray) -> np.ndarray:
    """a [2], b [2], points [K, 2] -> [K] distance from each point to the segment a-b."""
    ab = b - a
    t = np.clip((points - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(a + t[:, None] * ab - points, axis=-1)


def contact_distance(direction: np.ndarray, yaw: float) -> float:
    """Distance from a cube's centre to its surface along ``direction`` (unit [2]) for a cube at ``yaw``."""
    local = math.atan2(direction[1], direction[0]) - yaw
    return BLOCK_HALF / max(abs(math.cos(local)), abs(math.sin(local)))


def side_via_point(start: np.ndarray, goal: np.ndarray, obstacle: np.ndarray, clearance: float,
                   tie_side: float) -> np.ndarray | None:
    """A point beside ``obstacle`` to pass through when the segment start-goal comes closer than
    ``clearance`` to it, else None. The point lies on the side of the segment the obstacle is not on;
    ``tie_side`` (+-1) picks a side when the obstacle sits on the line."""
    if segment_distance(start, goal, obstacle[None])[0] >= clearance:
        return None
    d = goal - start
    d = d / max(float(np.linalg.norm(d)), 1e-9)
    normal = np.array([-d[1], d[0]])
    offset = float((obstacle - start) @ normal)
    side = -np.sign(offset) if abs(offset) > 1e-3 else tie_side
    return obstacle + side * normal * clearance * 1.2


class Router:
    """Shortest pusher paths from a start to a goal that stay ``radius`` away from every obstacle centre.

    A start or goal already inside an obstacle's disk (the pusher touching a cube) may leave or enter
    it: for segments from the start (to the goal) that disk shrinks to just inside the start (goal).
    """

    def __init__(self, radius: float):
        self.radius = radius
        ring = np.linspace(0.0, 2 * math.pi, N_RING, endpoint=False)
        self.ring = RING_FACTOR * radius * np.stack([np.cos(ring), np.sin(ring)], axis=-1)  # [N_RING, 2]

    def route(self, start: np.ndarray, goal: np.ndarray, obstacles: np.ndarray,
              rng: np.random.Generator) -> list[np.ndarray] | None:
        """Waypoints after ``start`` ending at ``goal`` (obstacles [K, 2]), or None when none connects.
        ``rng`` turns the ring a little per plan, so equally short detours left and right both occur."""
        turn = rng.uniform(0.0, 2 * math.pi / N_RING)
        c, s = math.cos(turn), math.sin(turn)
        ring = self.ring @ np.array([[c, s], [-s, c]])
        vias = (obstacles[:, None, :] + ring[None]).reshape(-1, 2)
        inside = np.linalg.norm(vias[:, None] - obstacles[None], axis=-1).min(axis=1) < self.radius
        in_bounds = np.all((vias >= WORKSPACE_LOW) & (vias <= WORKSPACE_HIGH), axis=1)
        nodes = [start, goal, *vias[~inside & in_bounds]]
        radii = np.full(len(obstacles), self.radius)
        start_r = np.minimum(radii, 0.95 * np.linalg.norm(obstacles - start, axis=1))
        goal_r = np.minimum(radii, 0.95 * np.linalg.norm(obstacles - goal, axis=1))
        n = len(nodes)
        dist = np.full(n, math.inf)
        previous = np.full(n, -1)
        dist[0] = 0.0
        queue = [(0.0, 0)]
        while queue:
            d, i = heapq.heappop(queue)
            if d > dist[i]:
                continue
            if i == 1:
                break
            for j in range(1, n):
                limit = np.minimum(start_r if i == 0 else radii, goal_r if j == 1 else radii)
                if j == i or np.any(segment_distance(nodes[i], nodes[j], obstacles) < limit):
                    continue
                step = d + float(np.linalg.norm(nodes[j] - nodes[i]))
                if step < dist[j]:
                    dist[j], previous[j] = step, i
                    heapq.heappush(queue, (step, j))
        if not math.isfinite(dist[1]):
            return None
        path, node = [], 1
        while node != 0:
            path.append(nodes[node])
            node = int(previous[node])
        return path[::-1]

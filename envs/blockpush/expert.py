"""Scripted block-pushing expert: privileged state in, absolute pusher targets out, at 10 Hz.

Per episode it draws, from its generator, which cube goes first (the order) and which zone each cube goes
to (the assignment): the two binary modes of the task, recorded in ``order`` and ``assignment``. Then, for
each cube in turn until it is PLACE_TOL from its zone's centre:

- the cube's sub-goal is its zone, or a via-point beside the other cube when the straight line to the zone
  passes it (``side_via_point``);
- travel: the pusher goes to the approach point behind the cube (opposite the sub-goal), along a shortest
  path around both cubes (``Router``);
- push: once behind the cube and on the line through its centre to the sub-goal, the pusher steps towards
  the sub-goal and slides sideways back onto that line as the cube turns or drifts; it slows down near the
  zone. The zones accept any yaw, so yaw is never corrected. Leaving the line (or getting in front of the
  cube) sends it back to travel.

A cube already placed counts as done until it is knocked more than REOPEN_TOL from its zone's centre.
Speeds vary per episode (``Style``); ``noise_std`` adds Gaussian noise (metres) to every action.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.blockpush.planner import Router, contact_distance, side_via_point
from envs.blockpush.scene import BLOCK_HALF, GOAL_TOLERANCE, PUSHER_RADIUS, WORKSPACE_HIGH, WORKSPACE_LOW

EXPERT_VERSION = "blockpush-expert-1"
PLACE_TOL = 0.015  # a cube is placed when its centre is this close to its zone's centre ...
REOPEN_TOL = 0.8 * GOAL_TOLERANCE  # ... and pushed again only when knocked this far out
CUBE_RADIUS = BLOCK_HALF * math.sqrt(2)  # circumscribed circle of a cube
OBSTACLE_RADIUS = CUBE_RADIUS + PUSHER_RADIUS + 0.008  # pusher centres this close would touch a cube
APPROACH_GAP = 0.02  # approach point: this far behind the cube's circumscribed circle (plus the pusher)
BLOCK_CLEARANCE = 2 * CUBE_RADIUS + 2 * PUSHER_RADIUS + 0.01  # a pushed cube passes the other this far off
ALIGN_TOL = 0.010  # lateral offset (m) from the push line that starts a push ...
KEEP_TOL = 0.022  # ... and that ends one
LATERAL_GAIN = 0.6  # fraction of the lateral offset corrected per step while pushing
REACH_TOL = 0.01  # travel waypoints before the last count as reached this close


@dataclass
class Style:
    """Per-episode speeds (metres per control step)."""

    travel_step: float
    push_step: float

    @staticmethod
    def sample(rng: np.random.Generator) -> Style:
        return Style(travel_step=rng.uniform(0.03, 0.045), push_step=rng.uniform(0.014, 0.022))


class BlockPushExpert:
    """`act(env) -> float32 [2]`; `reset()` draws a new order, assignment and style."""

    def __init__(self, rng: np.random.Generator, noise_std: float = 0.0):
        if noise_std < 0:
            raise ValueError(f"noise_std={noise_std}; expected >= 0 (metres)")
        self.rng = rng
        self.noise_std = float(noise_std)
        self.router = Router(OBSTACLE_RADIUS)
        self.reset()

    def reset(self) -> None:
        first = int(self.rng.integers(2))
        self.order = (first, 1 - first)  # cube indices, in the order they are pushed
        zone_of_cube0 = int(self.rng.integers(2))
        self.assignment = (zone_of_cube0, 1 - zone_of_cube0)  # zone index of cube 0, cube 1
        self.style = Style.sample(self.rng)
        self.tie_side = float(self.rng.choice([-1.0, 1.0]))  # passing side when a cube is dead ahead
        self.placed = [False, False]
        self.mode = "travel"
        self.path: list[np.ndarray] | None = None
        self.path_goal: np.ndarray | None = None

    def act(self, env) -> np.ndarray:
        world = env.unwrapped.world
        target = self.clean_action(world.block_poses(), world.target_poses, world.pusher_xy)
        if self.noise_std > 0:
            target = target + self.noise_std * self.rng.standard_normal(2)
        return np.clip(target, WORKSPACE_LOW, WORKSPACE_HIGH).astype(np.float32)

    def clean_action(self, blocks: np.ndarray, targets: np.ndarray, pusher: np.ndarray) -> np.ndarray:
        """blocks [2, 3], targets [2, 3], pusher [2] -> the target [2] before noise."""
        cube = self._active_cube(blocks, targets)
        if cube is None:  # both placed: hold still (the env has terminated by now)
            return pusher.copy()
        centre, yaw = blocks[cube, :2], blocks[cube, 2]
        zone = targets[self.assignment[cube], :2]
        via = side_via_point(centre, zone, blocks[1 - cube, :2], BLOCK_CLEARANCE, self.tie_side)
        goal = zone if via is None else via
        direction = goal - centre
        direction = direction / max(float(np.linalg.norm(direction)), 1e-9)
        normal = np.array([-direction[1], direction[0]])
        along, lateral = float((pusher - centre) @ direction), float((pusher - centre) @ normal)
        reach = contact_distance(-direction, yaw) + PUSHER_RADIUS  # centre to pusher centre at contact
        behind = -reach - 0.04 < along < -0.5 * BLOCK_HALF
        if self.mode == "push" and not (behind and abs(lateral) < KEEP_TOL):
            self.mode, self.path = "travel", None
        if self.mode == "travel" and behind and abs(lateral) < ALIGN_TOL:
            self.mode = "push"
        if self.mode == "push":
            remaining = float(np.linalg.norm(zone - centre)) if via is None else math.inf
            step = float(np.clip(0.5 * remaining, 0.004, self.style.push_step))
            return pusher + step * direction - LATERAL_GAIN * lateral * normal
        approach = centre - direction * (CUBE_RADIUS + PUSHER_RADIUS + APPROACH_GAP)
        return self._travel(pusher, approach, blocks[:, :2])

    def _active_cube(self, blocks: np.ndarray, targets: np.ndarray) -> int | None:
        for cube in self.order:
            error = float(np.linalg.norm(blocks[cube, :2] - targets[self.assignment[cube], :2]))
            if self.placed[cube] and error > REOPEN_TOL:
                self.placed[cube] = False
            if not self.placed[cube] and error < PLACE_TOL:
                self.placed[cube] = True
                self.mode, self.path = "travel", None
            if not self.placed[cube]:
                return cube
        return None

    def _travel(self, pusher: np.ndarray, goal: np.ndarray, obstacles: np.ndarray) -> np.ndarray:
        """The next target along a path to ``goal`` around the cubes; re-planned when the goal moves."""
        if self.path is None or float(np.linalg.norm(goal - self.path_goal)) > 0.01:
            self.path = self.router.route(pusher, goal, obstacles, self.rng) or [goal]
            self.path_goal = goal
        while len(self.path) > 1 and float(np.linalg.norm(self.path[0] - pusher)) < REACH_TOL:
            self.path.pop(0)
        waypoint = self.path[0] if len(self.path) > 1 else goal
        offset = waypoint - pusher
        dist = float(np.linalg.norm(offset))
        if dist <= self.style.travel_step:
            return waypoint
        return pusher + offset * (self.style.travel_step / dist)

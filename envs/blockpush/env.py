"""Multimodal block pushing (IBC's BlockPushMultimodal, as Diffusion Policy evaluates it) as a gymnasium env.

A pusher moves two cubes into two target zones; either cube may go to either zone, in either order. The
initial layout follows IBC's sampler: cubes at x = 0.4 ± 0.1, y = -0.2 ± 0.15, any yaw, centres at least
MIN_BLOCK_DIST apart (IBC compares only the x coordinates; here the distance); zones at y = 0.2, one on
each side of x = 0.4 (± 0.12, which side drawn), with IBC's small jitter; the pusher starts at
(0.3, -0.4). The episode terminates when both cubes are in distinct zones, or is truncated after
``max_episode_steps`` (350, Diffusion Policy's runner) control steps at 10 Hz.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.blockpush.render import BlockPushRenderer
from envs.blockpush.scene import (
    CONTROL_HZ,
    GOAL_TOLERANCE,
    WORKSPACE_HIGH,
    WORKSPACE_LOW,
    BlockPushWorld,
    wrap_yaw,
)

PUSHER_START = np.array([0.3, -0.4])
BLOCK_CENTRE, BLOCK_SHIFT = np.array([0.4, -0.2]), np.array([0.1, 0.15])
MIN_BLOCK_DIST = 0.1
TARGET_Y, TARGET_SIDE_OFFSET = 0.2, 0.12
TARGET_JITTER = np.array([0.005, 0.0075])  # IBC: 0.05 of the block shifts
TARGET_YAW_JITTER = math.pi / 30  # IBC's zones point at yaw pi +- pi/30; the zone test ignores it
MAX_RESET_TRIES = 1000


@dataclass
class BlockPushEnvConfig:
    max_episode_steps: int = 350  # Diffusion Policy's block-pushing runner
    render_size: int = 192  # render() frames, pixels
    render_action: bool = True  # red cross at the last commanded target in render()

    def __post_init__(self):
        if self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps={self.max_episode_steps}; expected >= 1 (DP uses 350)")
        if self.render_size < 16:
            raise ValueError(f"render_size={self.render_size}; expected >= 16")


def zone_of_blocks(block_xy: np.ndarray, target_xy: np.ndarray) -> np.ndarray:
    """block_xy [2, 2], target_xy [2, 2] -> [2] int: the zone each block's centre is in, -1 for none.

    The zones are 0.24 m apart and GOAL_TOLERANCE is 0.05 m, so a block is in at most one zone.
    """
    dist = np.linalg.norm(block_xy[:, None, :] - target_xy[None, :, :], axis=-1)  # [block, target]
    nearest = np.argmin(dist, axis=1)
    inside = dist[np.arange(len(block_xy)), nearest] < GOAL_TOLERANCE
    return np.where(inside, nearest, -1)


def phase_indicators(zones: np.ndarray) -> tuple[bool, bool]:
    """(p1, p2): at least one block in a zone; both blocks in distinct zones."""
    p1 = bool(np.any(zones >= 0))
    p2 = bool(np.all(zones >= 0) and zones[0] != zones[1])
    return p1, p2


def sample_layout(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """IBC's initial layout: (block_poses [2, 3], target_poses [2, 3])."""
    for _ in range(MAX_RESET_TRIES):
        xy = BLOCK_CENTRE + rng.uniform(-BLOCK_SHIFT, BLOCK_SHIFT, size=(2, 2))
        if np.linalg.norm(xy[0] - xy[1]) > MIN_BLOCK_DIST:
            break
    else:
        raise RuntimeError(f"no block layout with centres {MIN_BLOCK_DIST} m apart in {MAX_RESET_TRIES} "
                           "tries")
    blocks = np.concatenate([xy, rng.uniform(0.0, math.pi / 2, size=(2, 1))], axis=1)
    side = rng.choice([-1.0, 1.0])
    centres = np.array([[BLOCK_CENTRE[0] + side * TARGET_SIDE_OFFSET, TARGET_Y],
                        [BLOCK_CENTRE[0] - side * TARGET_SIDE_OFFSET, TARGET_Y]])
    targets_xy = centres + rng.uniform(-TARGET_JITTER, TARGET_JITTER, size=(2, 2))
    yaws = math.pi + rng.uniform(-TARGET_YAW_JITTER, TARGET_YAW_JITTER, size=(2, 1))
    return blocks, np.concatenate([targets_xy, yaws], axis=1)


class BlockPushEnv(gym.Env):
    """Action: float32 [2], the pusher's absolute target (x, y) in metres, clipped to IBC's workspace.

    Observation (dict of float32 arrays, Diffusion Policy's 16 low-dim values):
      block_pose      [2, 3]  x, y, yaw mod pi/2 of each cube
      effector_pos    [2]     pusher x, y
      effector_target [2]     the last commanded (clipped) target; the pusher's position after a reset
      target_pose     [2, 3]  x, y, yaw of each zone
    Reward: 1 when both cubes are in distinct zones (p2), 0.5 when at least one cube is in a zone (p1), else
    0; the runner's episode score (max reward) is then (p1 + p2) / 2 of the episode's best moment.
    `info`: p1, p2 (floats, 0 or 1, this step), is_success (= p2), zones ([2] int, zone of each cube or -1),
    first_block (the cube that entered a zone first, -1 before; the mode a multimodality metric reads),
    block_poses (float64 [2, 3], unwrapped yaw), target_poses.
    `reset(seed=..., options={"block_poses": ..., "target_poses": ..., "pusher_pos": ...})`: any of the
    three given replaces the sampled one (tests, replays).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, max_episode_steps: int = 350, render_size: int = 192, render_action: bool = True,
                 render_mode: str | None = "rgb_array"):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}; expected 'rgb_array' or None")
        self.config = BlockPushEnvConfig(max_episode_steps, render_size, render_action)
        self.render_mode = render_mode
        low, high = WORKSPACE_LOW.astype(np.float32), WORKSPACE_HIGH.astype(np.float32)
        self.action_space = spaces.Box(low, high, dtype=np.float32)
        pose = spaces.Box(-5.0, 5.0, shape=(2, 3), dtype=np.float32)
        xy = spaces.Box(np.float32(-5.0), np.float32(5.0), shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Dict({"block_pose": pose, "effector_pos": xy, "effector_target": xy,
                                              "target_pose": pose})
        self.world = BlockPushWorld()
        self.renderer: BlockPushRenderer | None = None
        self.effector_target = PUSHER_START.copy()
        self.elapsed_steps = 0
        self.first_block = -1

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        blocks, targets = sample_layout(self.np_random)
        blocks = _checked(options.get("block_poses", blocks), (2, 3), "block_poses")
        targets = _checked(options.get("target_poses", targets), (2, 3), "target_poses")
        pusher = _checked(options.get("pusher_pos", PUSHER_START), (2,), "pusher_pos")
        self.world.set_state(blocks, targets, pusher)
        self.effector_target = pusher.copy()
        self.elapsed_steps = 0
        self.first_block = -1
        zones = self._update_zones()
        return self._get_obs(), self._get_info(zones)

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be 2 finite numbers (absolute pusher target x, y in metres); "
                             f"got {action!r}")
        self.effector_target = np.clip(action, WORKSPACE_LOW, WORKSPACE_HIGH)
        self.world.step(self.effector_target)
        self.elapsed_steps += 1
        zones = self._update_zones()
        p1, p2 = phase_indicators(zones)
        reward = 1.0 if p2 else 0.5 if p1 else 0.0
        truncated = self.elapsed_steps >= self.config.max_episode_steps
        return self._get_obs(), reward, p2, truncated, self._get_info(zones)

    def _update_zones(self) -> np.ndarray:
        zones = zone_of_blocks(self.world.block_poses()[:, :2], self.world.target_poses[:, :2])
        if self.first_block < 0 and np.any(zones >= 0):
            self.first_block = int(np.flatnonzero(zones >= 0)[0])  # both in one step: the lower index
        return zones

    def _get_obs(self) -> dict[str, np.ndarray]:
        blocks = self.world.block_poses()
        blocks[:, 2] = wrap_yaw(blocks[:, 2])
        return {"block_pose": blocks.astype(np.float32),
                "effector_pos": self.world.pusher_xy.astype(np.float32),
                "effector_target": self.effector_target.astype(np.float32),
                "target_pose": self.world.target_poses.astype(np.float32)}

    def _get_info(self, zones: np.ndarray) -> dict:
        p1, p2 = phase_indicators(zones)
        return {"p1": float(p1), "p2": float(p2), "is_success": p2, "zones": zones.copy(),
                "first_block": self.first_block, "block_poses": self.world.block_poses(),
                "target_poses": self.world.target_poses.copy()}

    def render(self) -> np.ndarray | None:
        """RGB uint8 [render_size, render_size, 3], top-down."""
        if self.render_mode is None:
            return None
        if self.renderer is None:
            self.renderer = BlockPushRenderer(self.config.render_size)
        action = self.effector_target if self.config.render_action and self.elapsed_steps else None
        return self.renderer.draw(self.world.block_poses(), self.world.target_poses, self.world.pusher_xy,
                                  action)


def _checked(value, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.array(value, dtype=np.float64)
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise ValueError(f"options[{name!r}] must be finite numbers of shape {list(shape)}; got {value!r}")
    return array

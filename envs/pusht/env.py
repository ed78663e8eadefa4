"""Push-T (Diffusion Policy's version) as a gymnasium env: pymunk physics, headless rendering.

Physics facts reproduced from DP's `pusht_env.py` (and checked in tests/envs/test_pusht_env.py):
- friction = 1 is set on the *bodies*, which pymunk ignores; shapes keep friction 0, so every contact
  is frictionless;
- space damping 0 means a dynamic body loses all its velocity every step (pymunk's damping is the
  fraction kept per second), so the block only moves while it is pushed: pushing is quasi-static;
- the block's centre of gravity is local (0, 45), not its origin; DP's legacy state setter (used by its
  test environments) assigns the position before the angle, and assigning the angle rotates the body
  about its centre of gravity, so the block's origin ends up elsewhere than requested;
- after a state is set one 10 ms physics step runs (it resolves an agent/block overlap, if any).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pymunk
from gymnasium import spaces

from envs.pusht.geometry import (
    BAR_VERTS,
    BLOCK_COG,
    GOAL_POSE,
    STEM_VERTS,
    SUCCESS_THRESHOLD,
    WINDOW_SIZE,
    CoverageMeter,
    block_keypoints,
)
from envs.pusht.render import AGENT_RADIUS, WALLS, PushTRenderer

SIM_HZ = 100
CONTROL_HZ = 10
SUBSTEPS = SIM_HZ // CONTROL_HZ
DT = 1.0 / SIM_HZ
K_P, K_V = 100.0, 20.0  # PD gains: acc = K_P (target - pos) + K_V (0 - vel)
OBS_TYPES = ("state", "keypoints", "image")


class PushTWorld:
    """One pymunk space with walls, the kinematic agent and the T block (also the expert's private copy)."""

    def __init__(self, count_contacts: bool = False):
        self.space = pymunk.Space()
        self.space.gravity = (0, 0)
        self.space.damping = 0
        for a, b in WALLS:
            self.space.add(pymunk.Segment(self.space.static_body, a, b, 2))
        self.agent = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
        self.agent.position = (256, 400)
        self.agent.friction = 1  # DP sets it on the body: pymunk ignores it (shape friction stays 0)
        self.space.add(self.agent, pymunk.Circle(self.agent, AGENT_RADIUS))
        # DP's moment: its second term reuses the bar's vertices, so the moment is twice the bar's.
        self.block = pymunk.Body(1, 2 * pymunk.moment_for_poly(1, BAR_VERTS))
        shapes = [pymunk.Poly(self.block, BAR_VERTS), pymunk.Poly(self.block, STEM_VERTS)]
        self.block.center_of_gravity = BLOCK_COG
        self.block.position = (256, 300)
        self.block.friction = 1
        self.space.add(self.block, *shapes)
        self.n_contact_points = 0
        if count_contacts:
            handler = self.space.add_collision_handler(0, 0)
            handler.post_solve = self._count_contacts

    def _count_contacts(self, arbiter, space, data) -> None:
        self.n_contact_points += len(arbiter.contact_point_set.points)

    def set_state(self, state, legacy: bool) -> None:
        """state [5] = agent x, y, block x, y, angle; then one physics step, as DP."""
        ax, ay, bx, by, angle = (float(v) for v in state)
        self.agent.position = (ax, ay)
        self.agent.velocity = (0.0, 0.0)
        self.block.velocity = (0.0, 0.0)
        self.block.angular_velocity = 0.0
        if legacy:  # DP's legacy order: the angle turns the block about its CoG after placing the origin
            self.block.position = (bx, by)
            self.block.angle = angle
        else:
            self.block.angle = angle
            self.block.position = (bx, by)
        self.space.step(DT)

    def step(self, target_x: float, target_y: float) -> None:
        """One control step: SUBSTEPS physics steps of PD tracking towards the absolute target."""
        agent, space = self.agent, self.space
        for _ in range(SUBSTEPS):
            p, v = agent.position, agent.velocity
            agent.velocity = (v.x + (K_P * (target_x - p.x) - K_V * v.x) * DT,
                              v.y + (K_P * (target_y - p.y) - K_V * v.y) * DT)
            space.step(DT)

    def block_pose(self) -> tuple[float, float, float]:
        p = self.block.position
        return (p.x, p.y, self.block.angle)

    def state(self) -> np.ndarray:
        """[5] float64: agent x, y, block x, y, angle mod 2π."""
        a, b = self.agent.position, self.block.position
        return np.array([a.x, a.y, b.x, b.y, self.block.angle % (2 * math.pi)])


@dataclass
class PushTEnvConfig:
    obs_type: str = "state"
    render_size: int = 96  # image observations
    video_size: int | None = None  # render(); None = render_size
    max_episode_steps: int = 300  # DP's runners use 300
    legacy: bool = True  # seed resets use DP's legacy setter, as DP's test environments do
    render_action: bool = True  # red cross at the last action in render() (never in observations)

    def __post_init__(self):
        if self.obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type={self.obs_type!r}; expected one of {OBS_TYPES}")
        if self.render_size < 16:
            raise ValueError(f"render_size={self.render_size}; expected >= 16 (DP uses 96)")
        if self.video_size is not None and self.video_size < 16:
            raise ValueError(f"video_size={self.video_size}; expected >= 16 or None (= render_size)")
        if self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps={self.max_episode_steps}; expected >= 1 (DP uses 300)")


class PushTEnv(gym.Env):
    """Diffusion Policy's Push-T. Action: float32 [2] absolute agent target in pixels.

    Observations (dicts of numpy arrays, by `obs_type`):
      state:     {"state": float32 [5]} (agent x, y, block x, y, angle mod 2π)
      keypoints: {"keypoint": float32 [9, 2], "agent_pos": float32 [2]}
      image:     {"image": uint8 [render_size, render_size, 3], "agent_pos": float32 [2]}
    `info`: coverage, is_success (coverage > 0.95), state (float64 [5]), n_contacts.
    Reward clip(coverage / 0.95, 0, 1); terminated on success; truncated after max_episode_steps.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, obs_type: str = "state", render_size: int = 96, video_size: int | None = None,
                 max_episode_steps: int = 300, legacy: bool = True, render_action: bool = True,
                 render_mode: str | None = "rgb_array"):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}; expected 'rgb_array' or None")
        self.config = PushTEnvConfig(obs_type, render_size, video_size, max_episode_steps, legacy,
                                     render_action)
        self.render_mode = render_mode
        ws = float(WINDOW_SIZE)
        self.action_space = spaces.Box(0.0, ws, shape=(2,), dtype=np.float32)
        self.observation_space = self._make_obs_space(obs_type, render_size)
        self.coverage_meter = CoverageMeter(GOAL_POSE)
        self.obs_renderer = PushTRenderer(render_size) if obs_type == "image" else None
        self.video_renderer = None
        self.world = PushTWorld(count_contacts=True)
        self.latest_action = None
        self.elapsed_steps = 0

    @staticmethod
    def _make_obs_space(obs_type: str, render_size: int) -> spaces.Dict:
        ws = float(WINDOW_SIZE)
        agent = spaces.Box(0.0, ws, shape=(2,), dtype=np.float32)
        if obs_type == "state":
            high = np.array([ws, ws, ws, ws, 2 * np.pi], dtype=np.float32)
            return spaces.Dict({"state": spaces.Box(np.zeros(5, np.float32), high, dtype=np.float32)})
        if obs_type == "keypoints":  # keypoints of a block touching the walls may leave the arena
            kp = spaces.Box(-ws, 2 * ws, shape=(9, 2), dtype=np.float32)
            return spaces.Dict({"keypoint": kp, "agent_pos": agent})
        img = spaces.Box(0, 255, shape=(render_size, render_size, 3), dtype=np.uint8)
        return spaces.Dict({"image": img, "agent_pos": agent})

    # Privileged access for the scripted expert.
    @property
    def agent(self) -> pymunk.Body:
        return self.world.agent

    @property
    def block(self) -> pymunk.Body:
        return self.world.block

    def get_state(self) -> np.ndarray:
        """[5] float64: agent x, y, block x, y, angle mod 2π."""
        return self.world.state()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        state = options.get("reset_to_state")
        legacy = bool(options.get("legacy", self.config.legacy if state is None else False))
        if state is None:
            if seed is None:
                seed = int(self.np_random.integers(0, 2**31 - 1))
            state = legacy_initial_state(seed)
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (5,) or not np.all(np.isfinite(state)):
            raise ValueError(f"options['reset_to_state'] must be 5 finite numbers [agent x, y, block x, y, "
                             f"angle]; got {state!r}")
        self.world = PushTWorld(count_contacts=True)  # fresh space: no state carried across episodes
        self.world.set_state(state, legacy=legacy)
        self.latest_action = None
        self.elapsed_steps = 0
        coverage = self.coverage_meter(self.world.block_pose())
        return self._get_obs(), self._get_info(coverage, 0)

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be 2 finite numbers (absolute target x, y in pixels); "
                             f"got {action!r}")
        self.latest_action = action
        self.world.n_contact_points = 0
        self.world.step(float(action[0]), float(action[1]))
        self.elapsed_steps += 1
        coverage = self.coverage_meter(self.world.block_pose())
        reward = float(np.clip(coverage / SUCCESS_THRESHOLD, 0.0, 1.0))
        terminated = coverage > SUCCESS_THRESHOLD
        truncated = self.elapsed_steps >= self.config.max_episode_steps
        n_contacts = int(math.ceil(self.world.n_contact_points / SUBSTEPS))
        return self._get_obs(), reward, terminated, truncated, self._get_info(coverage, n_contacts)

    def _get_obs(self) -> dict:
        world = self.world
        a = world.agent.position
        agent_pos = np.array([a.x, a.y], dtype=np.float32)
        obs_type = self.config.obs_type
        if obs_type == "state":
            return {"state": world.state().astype(np.float32)}
        if obs_type == "keypoints":
            keypoint = block_keypoints(world.block_pose()).astype(np.float32)
            return {"keypoint": keypoint, "agent_pos": agent_pos}
        return {"image": self.obs_renderer.draw((a.x, a.y), world.block_pose()), "agent_pos": agent_pos}

    def _get_info(self, coverage: float, n_contacts: int) -> dict:
        return {"coverage": coverage, "is_success": coverage > SUCCESS_THRESHOLD,
                "state": self.world.state(), "n_contacts": n_contacts}

    def render(self) -> np.ndarray | None:
        """RGB uint8 [video_size, video_size, 3] (video_size defaults to render_size)."""
        if self.render_mode is None:
            return None
        if self.video_renderer is None:
            self.video_renderer = PushTRenderer(self.config.video_size or self.config.render_size)
        action = self.latest_action if self.config.render_action else None
        a = self.world.agent.position
        return self.video_renderer.draw((a.x, a.y), self.world.block_pose(), action)


def legacy_initial_state(seed: int) -> np.ndarray:
    """Diffusion Policy's seed -> initial state: np.random.RandomState draws, in DP's order."""
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed={seed}; DP's legacy RandomState needs 0 <= seed < 2**32")
    rs = np.random.RandomState(seed=seed)
    return np.array([rs.randint(50, 450), rs.randint(50, 450), rs.randint(100, 400), rs.randint(100, 400),
                     rs.randn() * 2 * np.pi - np.pi], dtype=np.float64)

"""Franka Kitchen as a gymnasium env with Diffusion Policy's low-dim state and p1..p4 task indicators.

The simulation is gymnasium-robotics' ``FrankaKitchen-v1`` (MuJoCo, 12.5 Hz control, 40 physics steps of 2 ms
per action) with all seven tasks as goals, so the tasks may be completed in any order. A task is complete when
its joints are within BONUS_THRESH of their goal (gymnasium-robotics' rule, which is D4RL's); completions are
kept for the rest of the episode, in the order they happened. The episode terminates when ``tasks_to_finish``
distinct tasks are complete (4: the demonstrations do four) and is truncated after ``max_episode_steps`` (360;
Diffusion Policy's kitchen runner stops at 280, the scripted expert needs up to ~290).

The start state is the kitchen's fixed one; what differs between seeds is the simulator's observation noise,
which also enters the control (the underlying env integrates velocity actions from the noisy joint reading).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

TASKS = ("microwave", "kettle", "bottom burner", "top burner", "light switch", "slide cabinet",
         "hinge cabinet")
N_ROBOT_JOINTS = 9  # 7 arm joints + 2 fingers
N_OBJECT_QPOS = 21  # burners, light, cabinets, microwave, kettle (position + quaternion)
N_P_METRICS = 4  # p1..p4
CONTROL_HZ = 12.5


@dataclass
class KitchenEnvConfig:
    max_episode_steps: int = 360  # the expert takes ~255 steps (up to ~290) for 4 tasks; DP: 280
    tasks_to_finish: int = 4  # terminate once this many distinct tasks are complete
    render_size: int = 192  # render() frames, pixels

    def __post_init__(self):
        if self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps={self.max_episode_steps}; expected >= 1 (default 360)")
        if not 1 <= self.tasks_to_finish <= len(TASKS):
            raise ValueError(f"tasks_to_finish={self.tasks_to_finish}; expected 1..{len(TASKS)}")
        if self.render_size < 16:
            raise ValueError(f"render_size={self.render_size}; expected >= 16")


def completed_tasks(qpos: np.ndarray) -> list[str]:
    """qpos [30] (robot 9 + objects 21) -> the tasks whose joints are within BONUS_THRESH of their goals."""
    from gymnasium_robotics.envs.franka_kitchen.kitchen_env import (
        BONUS_THRESH,
        OBS_ELEMENT_GOALS,
        OBS_ELEMENT_INDICES,
    )

    return [task for task in TASKS
            if np.linalg.norm(qpos[OBS_ELEMENT_INDICES[task]] - OBS_ELEMENT_GOALS[task]) < BONUS_THRESH]


def p_metrics(n_completed: int) -> dict[str, float]:
    """{"p1": ..., "p4": ...}: 1.0 when at least k distinct tasks are complete, else 0.0."""
    return {f"p{k}": float(n_completed >= k) for k in range(1, N_P_METRICS + 1)}


class FrankaKitchenEnv(gym.Env):
    """Action: float32 [9] in [-1, 1], the underlying env's joint velocity commands (7 arm joints, 2
    fingers; rad/s or m/s divided by 2); each step drives the position actuators to
    ``observed qpos + 2 * action * dt``.

    Observation (dict of float32 arrays, Diffusion Policy's kitchen state without its constant goal half):
      robot_qpos   [9]   arm joint angles and finger positions, with the simulator's observation noise
      object_qpos  [21]  burner knobs and plates, light, slide and hinge cabinets, microwave, kettle pose
    Reward: distinct tasks complete so far / tasks_to_finish, at most 1, so the runner's episode score (max
    reward) is the share of the tasks done.
    `info`: completed_tasks (list of names, in completion order), n_completed, p1..p4 (floats, at least k
    tasks complete by this step), is_success (= n_completed >= tasks_to_finish), qpos (float64 [30], no
    noise).
    `reset(seed=..., options={"qpos": [30], "qvel": [29]})`: either replaces the fixed start state (tests,
    replays); tasks already complete in it count from the reset on.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, max_episode_steps: int = 360, tasks_to_finish: int = 4, render_size: int = 192,
                 render_mode: str | None = None):
        from gymnasium_robotics.envs.franka_kitchen.kitchen_env import KitchenEnv

        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}; expected 'rgb_array' or None")
        self.config = KitchenEnvConfig(max_episode_steps, tasks_to_finish, render_size)
        self.render_mode = render_mode
        self.kitchen = KitchenEnv(tasks_to_complete=list(TASKS), terminate_on_tasks_completed=False)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(N_ROBOT_JOINTS,), dtype=np.float32)
        self.observation_space = spaces.Dict({
            "robot_qpos": spaces.Box(-np.inf, np.inf, shape=(N_ROBOT_JOINTS,), dtype=np.float32),
            "object_qpos": spaces.Box(-np.inf, np.inf, shape=(N_OBJECT_QPOS,), dtype=np.float32)})
        self.completed: list[str] = []
        self.elapsed_steps = 0
        self.renderer = None
        self._obs: dict[str, np.ndarray] = {}

    @property
    def model(self):
        return self.kitchen.model

    @property
    def data(self):
        return self.kitchen.data

    @property
    def control_dt(self) -> float:
        return float(self.kitchen.robot_env.dt)

    @property
    def observed_robot_qpos(self) -> np.ndarray:
        """float64 [9]: the noisy joint reading the next action is integrated from (= obs robot_qpos)."""
        return self.kitchen.robot_env._last_robot_qpos.copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        if seed is None:  # the simulator's noise follows this env's generator
            seed = int(self.np_random.integers(2**31))
        raw, _ = self.kitchen.reset(seed=seed)
        if "qpos" in options or "qvel" in options:
            qpos = _checked(options.get("qpos", self.data.qpos), (self.model.nq,), "qpos")
            qvel = _checked(options.get("qvel", np.zeros(self.model.nv)), (self.model.nv,), "qvel")
            robot = self.kitchen.robot_env
            robot.set_state(qpos, qvel)
            raw = self.kitchen._get_obs(robot._get_obs())  # noisy reading of the new state (drives control)
        self.completed, self.elapsed_steps = [], 0
        self._update_completed()
        self._obs = _split(raw["observation"])
        return self._copy_obs(), self._get_info()

    def step(self, action):
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (N_ROBOT_JOINTS,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be {N_ROBOT_JOINTS} finite numbers (joint velocity commands in "
                             f"[-1, 1]); got {action!r}")
        raw, *_ = self.kitchen.step(np.clip(action, -1.0, 1.0))
        self.elapsed_steps += 1
        self._update_completed()
        self._obs = _split(raw["observation"])
        n_done = len(self.completed)
        reward = min(n_done / self.config.tasks_to_finish, 1.0)
        terminated = n_done >= self.config.tasks_to_finish
        truncated = self.elapsed_steps >= self.config.max_episode_steps
        return self._copy_obs(), reward, terminated, truncated, self._get_info()

    def _update_completed(self) -> None:
        for task in completed_tasks(self.data.qpos):
            if task not in self.completed:
                self.completed.append(task)  # several in one step: TASKS order

    def _copy_obs(self) -> dict[str, np.ndarray]:
        return {key: value.copy() for key, value in self._obs.items()}

    def _get_info(self) -> dict:
        n_done = len(self.completed)
        return {"completed_tasks": list(self.completed), "n_completed": n_done, **p_metrics(n_done),
                "is_success": n_done >= self.config.tasks_to_finish, "qpos": self.data.qpos.copy()}

    def render(self) -> np.ndarray | None:
        """RGB uint8 [render_size, render_size, 3] from the kitchen's default free camera (needs a GL
        backend: MUJOCO_GL=egl or osmesa on a headless machine)."""
        if self.render_mode is None:
            return None
        import mujoco

        if self.renderer is None:
            size = self.config.render_size
            self.renderer = mujoco.Renderer(self.model, size, size)
            self.camera = mujoco.MjvCamera()
            self.camera.distance, self.camera.azimuth, self.camera.elevation = 2.2, 70.0, -35.0
            self.camera.lookat[:] = (-0.2, 0.5, 2.0)
        self.renderer.update_scene(self.data, self.camera)
        return self.renderer.render().copy()

    def close(self):
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
        self.kitchen.close()


def _split(observation: np.ndarray) -> dict[str, np.ndarray]:
    """gymnasium-robotics' observation [59] = robot qpos 9, robot qvel 9, object qpos 21, object qvel 20."""
    robot = observation[:N_ROBOT_JOINTS]
    objects = observation[2 * N_ROBOT_JOINTS:2 * N_ROBOT_JOINTS + N_OBJECT_QPOS]
    return {"robot_qpos": robot.astype(np.float32), "object_qpos": objects.astype(np.float32)}


def _checked(value, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.array(value, dtype=np.float64)
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise ValueError(f"options[{name!r}] must be finite numbers of shape {list(shape)}; got {value!r}")
    return array

"""Gymnasium-style environment over robosuite 1.5 for the robomimic tasks Lift, PickPlaceCan,
NutAssemblySquare and ToolHang.

Observations (dicts of numpy arrays, Diffusion Policy's keys):
    object               float32 [object_dim]  (Lift 10, Can 14, Square 14, ToolHang 44; robosuite's
                                               ``object-state``)
    robot0_eef_pos       float32 [3]           world frame
    robot0_eef_quat      float32 [4]           xyzw
    robot0_gripper_qpos  float32 [2]
    agentview_image, robot0_eye_in_hand_image  uint8 [H, W, 3] upright (obs_type="image" only)

Actions: 7-D OSC_POSE. ``action_mode="delta"`` (default): [dx, dy, dz, dax, day, daz] in [-1, 1]
(±0.05 m / ±0.5 rad per step, world axes) + gripper (-1 open, +1 close). ``action_mode="absolute"``:
world-frame target position [3], target orientation of the gripper site as an axis-angle vector [3],
gripper. robosuite 1.5 silently ignores the old ``control_delta`` flag, so absolute mode sets
``input_type="absolute"`` and ``input_ref_frame="world"``.

``render()`` (gymnasium's ``render_mode="rgb_array"``, used for evaluation videos) returns agentview at
``render_size`` for any ``obs_type``; a low-dim env creates its offscreen GL context only when filmed.

robosuite never ends an episode on success by itself; this wrapper truncates at the task horizon and,
with ``terminate_on_success`` (default), terminates at the first success step, which gives the same score
as Diffusion Policy's "max reward over the rollout".
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

GL_PROBE = "import mujoco; c = mujoco.GLContext(64, 64); c.make_current(); c.free(); print('ok')"


class RenderingUnavailable(RuntimeError):
    """No headless OpenGL backend (EGL or OSMesa) works on this machine; image observations cannot be made."""


@functools.cache  # one probe per backend and process: envs are built many times
def _probe_gl(backend: str) -> str | None:
    """Try a MuJoCo GL context under ``backend`` in a subprocess; None if it works, else the error."""
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", GL_PROBE], env=env, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        return "probe timed out after 60 s"
    if proc.returncode == 0 and "ok" in proc.stdout:
        return None
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {proc.returncode}"


def _load_triton_before_mesa() -> None:
    """Mesa's software renderer (llvmpipe, behind EGL and OSMesa here) loads the system's LLVM; triton, which
    torch imports lazily (torch.compile, and torchvision's ops on first use), carries its own LLVM. Loaded
    after a GL context exists, triton's library crashes the process (SIGSEGV in triton/knobs.py); loaded
    first, both work. So load it now, when it is installed."""
    if importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")


def ensure_gl_backend() -> str:
    """Select a headless GL backend for MuJoCo before it is imported: MUJOCO_GL if set, else EGL, else OSMesa.

    Sets ``MUJOCO_GL``/``PYOPENGL_PLATFORM`` in this process (they must be set before mujoco is imported) and
    returns the backend. Raises RenderingUnavailable with the reasons when none works.
    """
    _load_triton_before_mesa()
    chosen = os.environ.get("MUJOCO_GL")
    if "mujoco" in sys.modules or chosen:
        # mujoco fixes its GL backend at import (robosuite sets egl unless osmesa/glx is set): probe that one
        backend = chosen or "egl"
        error = _probe_gl(backend)
        if error is None:
            return backend
        raise RenderingUnavailable(
            f"MUJOCO_GL={backend} cannot create a GL context ({error}); mujoco is already imported or "
            "MUJOCO_GL is set, so no fallback is possible: start Python with MUJOCO_GL=osmesa "
            "PYOPENGL_PLATFORM=osmesa "
            "(Debian package libosmesa6) or install EGL (libegl1, libegl-mesa0)"
        )
    errors = {}
    for backend in ("egl", "osmesa"):
        errors[backend] = _probe_gl(backend)
        if errors[backend] is None:
            if backend == "osmesa":
                warnings.warn(
                    f"EGL rendering unavailable ({errors['egl']}); falling back to MUJOCO_GL=osmesa",
                    stacklevel=2,
                )
            os.environ["MUJOCO_GL"] = os.environ["PYOPENGL_PLATFORM"] = backend
            return backend
    raise RenderingUnavailable(
        f"no headless GL backend: EGL failed ({errors['egl']}), OSMesa failed ({errors['osmesa']}); install "
        "libegl1 + libegl-mesa0 (EGL) or libosmesa6 (OSMesa) to render image observations"
    )


@dataclass(frozen=True)
class TaskSpec:
    env_name: str  # robosuite environment name
    horizon: int  # max steps per episode (robomimic / Diffusion Policy)
    object_dim: int  # size of the "object" observation


TASKS = {
    "lift": TaskSpec("Lift", 400, 10),
    "can": TaskSpec("PickPlaceCan", 400, 14),
    "square": TaskSpec("NutAssemblySquare", 400, 14),  # robomimic 0.3.0's registry: square ph horizon 400
    "tool_hang": TaskSpec("ToolHang", 700, 44),
}
TASK_BY_ENV_NAME = {spec.env_name: task for task, spec in TASKS.items()}
CAMERAS = {"agentview_image": "agentview", "robot0_eye_in_hand_image": "robot0_eye_in_hand"}
CONTROL_FREQ = 20  # Hz, robomimic's setting
ACTION_DIM = 7


@dataclass
class RobomimicEnvConfig:
    task: str = "lift"  # "lift" | "can" | "square" | "tool_hang"
    obs_type: str = "low_dim"  # "low_dim" | "image" (image adds the two cameras to the low-dim keys)
    action_mode: str = "delta"  # "delta" | "absolute"
    horizon: int | None = None  # None: the task's horizon (400 Lift/Can/Square, 700 ToolHang)
    image_size: int = 84
    terminate_on_success: bool = True
    render_size: int = 256  # render() (videos): agentview at this size, Diffusion Policy's video size

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r} is unknown; expected one of {sorted(TASKS)}")
        if self.obs_type not in ("low_dim", "image"):
            raise ValueError(f"obs_type={self.obs_type!r}; expected 'low_dim' or 'image'")
        if self.action_mode not in ("delta", "absolute"):
            raise ValueError(f"action_mode={self.action_mode!r}; expected 'delta' or 'absolute'")
        if self.horizon is not None and self.horizon <= 0:
            raise ValueError(f"horizon={self.horizon} must be positive (or None for the task default)")
        for name in ("image_size", "render_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be positive")

    @property
    def spec(self) -> TaskSpec:
        return TASKS[self.task]

    @property
    def max_steps(self) -> int:
        return self.spec.horizon if self.horizon is None else self.horizon


def controller_config(action_mode: str) -> dict:
    """robosuite 1.5 composite controller config: Panda BASIC with an OSC_POSE arm in the requested mode."""
    from robosuite.controllers import load_composite_controller_config

    cfg = load_composite_controller_config(controller="BASIC", robot="Panda")
    # keep only the parts a Panda has, so the stored env_args are short and robosuite does not warn
    cfg["body_parts"] = {"right": cfg["body_parts"]["right"]}
    arm = cfg["body_parts"]["right"]
    if action_mode == "absolute":
        arm["input_type"] = "absolute"
        arm["input_ref_frame"] = "world"  # targets in the same frame as robot0_eef_pos
    else:
        arm["input_type"] = "delta"
    return cfg


def make_env_args(config: RobomimicEnvConfig) -> dict:
    """robomimic ``env_args``: env_name, type (1 = robosuite) and the ``robosuite.make`` keyword arguments."""
    images = config.obs_type == "image"
    env_kwargs = {
        "robots": "Panda",
        "controller_configs": controller_config(config.action_mode),
        "has_renderer": False,
        "has_offscreen_renderer": images,
        "use_camera_obs": False,  # cameras are rendered by this wrapper (upright, cheap to skip)
        "use_object_obs": True,
        "reward_shaping": False,
        "control_freq": CONTROL_FREQ,
        "ignore_done": True,
        "horizon": config.max_steps,
        "camera_names": [CAMERAS[k] for k in CAMERAS],
        "camera_heights": config.image_size,
        "camera_widths": config.image_size,
    }
    return {
        "env_name": config.spec.env_name,
        "type": 1,
        "env_kwargs": env_kwargs,
        "drifting_policy": {"task": config.task, "action_mode": config.action_mode},
    }


def config_from_env_args(env_args: dict | str, obs_type: str = "low_dim") -> RobomimicEnvConfig:
    """Rebuild a config from a file's ``env_args`` (ours, or a real robomimic file of a supported task)."""
    if isinstance(env_args, str):
        env_args = json.loads(env_args)
    name = env_args.get("env_name")
    if name not in TASK_BY_ENV_NAME:
        raise ValueError(
            f"env_args env_name={name!r} is not supported; expected one of {sorted(TASK_BY_ENV_NAME)}"
        )
    ours = env_args.get("drifting_policy", {})
    action_mode = ours.get("action_mode")
    if action_mode is None:  # a real robomimic file: read the controller
        ctrl = env_args.get("env_kwargs", {}).get("controller_configs", {})
        arm = ctrl.get("body_parts", {}).get("right", ctrl)
        absolute = arm.get("input_type") == "absolute" or arm.get("control_delta") is False
        action_mode = "absolute" if absolute else "delta"
    return RobomimicEnvConfig(task=TASK_BY_ENV_NAME[name], obs_type=obs_type, action_mode=action_mode)


class RobomimicEnv(gym.Env):
    """One robosuite task behind the project's env interface (see module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ}

    def __init__(self, config: RobomimicEnvConfig | None = None, render_mode: str | None = None,
                 **overrides: Any):
        self.config = (
            dataclasses.replace(config, **overrides)
            if config is not None
            else RobomimicEnvConfig(**overrides)
        )
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}; RobomimicEnv renders 'rgb_array' only (or None)")
        if self.config.obs_type == "image" or render_mode == "rgb_array":
            ensure_gl_backend()  # fails here, naming the missing packages, rather than at the first frame
        import robosuite

        self.env_args = make_env_args(self.config)
        self._env = robosuite.make(self.config.spec.env_name, **self.env_args["env_kwargs"])
        self._t = 0
        self._xml = self._env.model.get_xml()
        self.render_mode = "rgb_array"
        self.observation_space = self._make_observation_space()
        self.action_space = self._make_action_space()

    # ---- spaces -------------------------------------------------------------------------------------------
    def _make_observation_space(self) -> gym.spaces.Dict:
        dims = {
            "object": self.config.spec.object_dim,
            "robot0_eef_pos": 3,
            "robot0_eef_quat": 4,
            "robot0_gripper_qpos": 2,
        }
        spaces = {k: gym.spaces.Box(-np.inf, np.inf, (d,), np.float32) for k, d in dims.items()}
        if self.config.obs_type == "image":
            size = self.config.image_size
            for key in CAMERAS:
                spaces[key] = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        return gym.spaces.Dict(spaces)

    def _make_action_space(self) -> gym.spaces.Box:
        if self.config.action_mode == "delta":
            return gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        return gym.spaces.Box(-np.inf, np.inf, (ACTION_DIM,), np.float32)

    # ---- simulator access ---------------------------------------------------------------------------------
    @property
    def sim_env(self):
        """The underlying robosuite environment (privileged access for experts and tests)."""
        return self._env

    @property
    def arm_controller(self):
        return self._env.robots[0].part_controllers["right"]

    def get_state(self) -> np.ndarray:
        """Flattened MuJoCo state (time, qpos, qvel), float64 [state_dim]; robomimic's ``states`` row."""
        return np.asarray(self._env.sim.get_state().flatten(), dtype=np.float64)

    def model_xml(self) -> str:
        """MJCF of the current scene (robomimic's per-demo ``model_file``); object sizes vary per episode.

        This is the MJCF robosuite compiled, not MuJoCo's re-export (``sim.model.get_xml()``), whose inertias
        and armatures differ slightly and make replayed episodes drift by millimetres.
        """
        return self._xml

    def is_success(self) -> bool:
        return bool(self._env._check_success())

    def current_pose_action(self, gripper: float) -> np.ndarray:
        """Absolute action [7] that holds the current pose: eef position, axis-angle of the eef site frame.

        The controller tracks the gripper *site* frame (robosuite's ``robot0_eef_quat_site``), which is
        rotated against ``robot0_eef_quat``; absolute orientations are therefore in the site frame.
        """
        from scipy.spatial.transform import Rotation

        ctrl = self.arm_controller
        ctrl.update()
        rotvec = Rotation.from_matrix(ctrl.ref_ori_mat).as_rotvec()
        return np.concatenate([ctrl.ref_pos, rotvec, [gripper]]).astype(np.float64)

    def absolute_action(self, gripper: float) -> np.ndarray:
        """The controller's current goal as a world-frame absolute action [7] (valid right after a step)."""
        from scipy.spatial.transform import Rotation

        ctrl = self.arm_controller
        if ctrl.input_ref_frame == "world":
            pos, ori = ctrl.goal_pos, ctrl.goal_ori
        else:
            pos = ctrl.origin_pos + ctrl.origin_ori @ ctrl.goal_pos
            ori = ctrl.origin_ori @ ctrl.goal_ori
        rotvec = Rotation.from_matrix(ori).as_rotvec()
        return np.concatenate([pos, rotvec, [gripper]]).astype(np.float64)

    # ---- observations -------------------------------------------------------------------------------------
    def _observation(self, raw: dict) -> dict[str, np.ndarray]:
        obs = {
            "object": np.asarray(raw["object-state"], dtype=np.float32),
            "robot0_eef_pos": np.asarray(raw["robot0_eef_pos"], dtype=np.float32),
            "robot0_eef_quat": np.asarray(raw["robot0_eef_quat"], dtype=np.float32),
            "robot0_gripper_qpos": np.asarray(raw["robot0_gripper_qpos"], dtype=np.float32),
        }
        if self.config.obs_type == "image":
            obs.update(self.render_cameras())
        return obs

    def render_cameras(self) -> dict[str, np.ndarray]:
        """Both cameras as upright uint8 [H, W, 3] (MuJoCo renders bottom-up, hence the flip)."""
        if not self._env.has_offscreen_renderer:
            raise RenderingUnavailable(
                "this env was built with obs_type='low_dim'; build it with obs_type='image'"
            )
        size = self.config.image_size
        return {
            key: np.ascontiguousarray(self._env.sim.render(camera_name=cam, width=size, height=size)[::-1])
            for key, cam in CAMERAS.items()
        }

    def render(self) -> np.ndarray:
        """agentview as upright uint8 [render_size, render_size, 3] (a video frame; any obs_type).

        A low-dim env gets its offscreen render context here, on the first frame after each reset (robosuite
        rebuilds the simulator at every reset), so envs that are never filmed never pay for one.
        """
        sim = self._env.sim
        if sim._render_context_offscreen is None:
            ensure_gl_backend()
            from robosuite.utils.binding_utils import MjRenderContextOffscreen

            context = MjRenderContextOffscreen(sim, device_id=-1)  # registers itself with sim
            context.vopt.geomgroup[0] = 0  # collision meshes hidden, visual meshes shown, as robosuite does
            context.vopt.geomgroup[1] = 1
        size = self.config.render_size
        return np.ascontiguousarray(sim.render(camera_name=CAMERAS["agentview_image"], width=size,
                                               height=size)[::-1])

    def current_observation(self) -> dict[str, np.ndarray]:
        """Observation as a pure function of the simulator state.

        robosuite computes relative sensors (``Can_to_robot0_eef_pos``) from a cache filled earlier in the
        same pass, so one update can mix two states; the second update reads a cache filled at this state.
        """
        self._env._get_observations(force_update=True)
        return self._observation(self._env._get_observations(force_update=True))

    # ---- gymnasium API ------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset to a random initial state (``seed`` makes it reproducible) or to a stored one.

        options: ``reset_to_state`` (float64 [state_dim], a ``states`` row) with optional ``model_file`` (the
        demo's MJCF; needed when the scene differs from the current one, e.g. another episode's cube size).
        """
        super().reset(seed=seed)
        options = options or {}
        if seed is not None:
            # robosuite's placement samplers, robot init noise and object sizes share env.rng: reseed in place
            self._env.rng.bit_generator.state = np.random.default_rng(seed).bit_generator.state
        if "reset_to_state" in options:
            self._reset_to_state(np.asarray(options["reset_to_state"], np.float64), options.get("model_file"))
        else:
            self._env.reset()
            self._xml = self._env.model.get_xml()
        self._t = 0
        obs = self.current_observation()
        return obs, {"is_success": self.is_success(), "state": self.get_state()}

    def _reset_to_state(self, state: np.ndarray, model_file: str | None) -> None:
        if model_file is not None:
            self._env.reset_from_xml_string(self._env.edit_model_xml(model_file))
            self._xml = model_file
        expected = self.get_state().shape[0]
        if state.shape != (expected,):
            raise ValueError(
                f"reset_to_state has shape {state.shape} but this {self.config.spec.env_name} scene has "
                f"state dim {expected}; pass the demo's model_file with it or check the task"
            )
        self._env.sim.reset()
        self._env.sim.set_state_from_flattened(state)
        self._env.sim.forward()
        self._env.update_state()
        # Controllers keep state outside the simulator: OSC's nullspace posture (the joints at episode
        # start) and the Panda gripper's ramped command. Set them as at an episode start from this state, so
        # replaying a demo from its first state is exact; from a mid-episode state they differ slightly.
        for robot in self._env.robots:
            for ctrl in robot.part_controllers.values():
                ctrl.update_initial_joints(self._env.sim.data.qpos[ctrl.qpos_index])
                if hasattr(ctrl, "reset_goal"):
                    ctrl.reset_goal()
            for gripper in robot.gripper.values():
                gripper.current_action = np.zeros(gripper.dof)

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (ACTION_DIM,):
            raise ValueError(f"action has shape {action.shape}; expected ({ACTION_DIM},) OSC_POSE + gripper")
        self._env.step(action)
        # mj_step leaves positions computed before its last integration; recompute them so that the
        # observation is a function of get_state() (reset-to-state reproduces it exactly), and the reward
        # from the same state as the success flag (robosuite's own reward, from before, can miss a success)
        self._env.sim.forward()
        reward = self._env.reward(action)
        self._t += 1
        success = self.is_success()
        terminated = success and self.config.terminate_on_success
        truncated = self._t >= self.config.max_steps
        return self.current_observation(), float(reward), terminated, truncated, {"is_success": success}

    def close(self):
        self._env.close()

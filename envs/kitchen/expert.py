"""Scripted Franka Kitchen expert: end-effector waypoints, differential IK, joint-velocity actions.

Per episode it draws, from its generator, an order of its four tasks (microwave, bottom burner, light switch,
slide cabinet): the 24 orders are the task's modes, recorded in ``order``. Each task is a short script of
phases over the end-effector pose and the gripper, with handle positions read from the kitchen's sites:

- slide cabinet: closed fingers beside the door's handle, push it sideways;
- light switch: closed fingers beside the lever, push it over;
- microwave: open fingers around the vertical handle bar, close, pull the handle along the door's arc (the
  bar turns freely in the grasp), release;
- bottom burner: open fingers around the knob's grip, close, turn the wrist about the knob's axis, release.

Each task starts from a via point in front of its handle, above the kettle, then a standoff, and ends by
backing the gripper out along its pointing direction. Before the first task the arm unfolds, in joint space,
into the IK's rest posture (the kitchen's start has the shoulder at its limit and the wrist half a turn
away). The gripper points into the kitchen, level, throughout (turned about the vertical for the microwave,
about the knob's axis to turn it). Each step the next pose is at most ``speed`` metres and MAX_TURN radians
from the current one; the IK (``envs.kitchen.ik``) turns it into arm joint targets, pre-loaded against
gravity, and the action is the joint velocity that takes the observed joints there in one control step. A
phase that does not finish in its step budget is abandoned and the next one starts. ``noise_std`` adds
Gaussian noise to every action (in action units).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from envs.kitchen.ik import N_ARM, DifferentialIK, rotation_error

EXPERT_VERSION = "kitchen-expert-1"
EXPERT_TASKS = ("microwave", "bottom burner", "light switch", "slide cabinet")
GRIPPER_OPEN, GRIPPER_CLOSED = 0.04, 0.0  # finger joint targets, metres
# Gripper pointing into the kitchen (+y), level, fingers opening along x: columns are the site's x, y, z axes
LEVEL = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]])
TRAVEL_STEP, WORK_STEP = 0.06, 0.03  # metres of end-effector motion per control step
MAX_TURN = 0.2  # radians of end-effector rotation per control step
REACH_TOL, APPROACH_TOL = 0.02, 0.012  # metres: waypoint reached (travel, contact approach)
# Travel passes through a via point in front of the standoff, above the kettle (its lid is at z ~1.95)
VIA_Y, VIA_Z, VIA_TOL = 0.40, 2.05, 0.05
STANDOFF = 0.10  # metres in front of a handle where an approach starts
BACK_OFF = 0.12  # metres a finished task backs out along the pointing direction
JOINT_STEP = 0.16  # rad per control step: the most an action gives
READY_TOL = 0.5  # rad from the rest posture where the unfolding hands over to the IK
GRASP_STEPS = 4  # control steps to close or open the fingers
# Qpos indices and the expert's own finishing values (past gymnasium-robotics' 0.3 completion threshold)
SLIDE, LIGHT, MICROWAVE, BOTTOM_KNOB = 19, 17, 22, 11
SLIDE_DONE, LIGHT_DONE, MICROWAVE_DONE, KNOB_DONE = 0.15, -0.6, -0.55, -0.7
SLIDE_CONTACT = (-0.045, 0.0, 0.0)  # fingers left of the sliding door's handle ...
SLIDE_TRAVEL = 0.30  # ... pushed this far right (m); the push ends at SLIDE_DONE
# Fingers right of the switch lever (which reaches 0.04 m right of its site), tips short of the burner dials
LIGHT_CONTACT = (0.068, -0.016, -0.012)
LIGHT_TRAVEL = -0.16  # m along x; the push ends at LIGHT_DONE
MICROWAVE_YAW = 0.4  # gripper turned towards the microwave door (rad about +z): reachable along the arc
MICROWAVE_HINGE = "microwave"  # joint whose anchor is the door's hinge
MICROWAVE_INSET = 0.015  # m the grasp stops short of the handle bar's axis: fingertips clear of the door
ARC_LEAD = 0.15  # rad the pull target runs ahead of the door angle
KNOB_CONTACT = (0.0, -0.04, 0.0)  # finger pads over the knob's grip, tips short of the dial
KNOB_TURN = 1.4  # rad of wrist rotation about +y (the knob, goal -0.88 about -y, slips in the grasp)


@dataclass
class KitchenState:
    qpos: np.ndarray  # [30] true joint positions
    position: np.ndarray  # [3] end-effector site
    rotation: np.ndarray  # [3, 3]
    start: np.ndarray  # [3] end-effector position when the current phase began
    steps: int  # control steps spent in the current phase


@dataclass
class Phase:
    name: str
    target: Callable[[KitchenState], tuple[np.ndarray, np.ndarray]]  # -> position [3], rotation [3, 3]
    gripper: float
    done: Callable[[KitchenState], bool]
    speed: float = TRAVEL_STEP
    max_steps: int = 60


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _at(position: np.ndarray, rotation: np.ndarray) -> Callable[[KitchenState], tuple]:
    return lambda state: (position, rotation)


def _reached(position: np.ndarray, tol: float) -> Callable[[KitchenState], bool]:
    return lambda state: float(np.linalg.norm(state.position - position)) < tol


def _waited(steps: int) -> Callable[[KitchenState], bool]:
    return lambda state: state.steps >= steps


def _approach(name: str, contact: np.ndarray, rotation: np.ndarray, gripper: float) -> list[Phase]:
    """Stand off in front of ``contact`` (along the pointing direction), then move in slowly."""
    standoff = contact - STANDOFF * rotation[:, 2]
    via = np.array([standoff[0], min(standoff[1], VIA_Y), max(standoff[2], VIA_Z)])
    return [Phase(f"{name}: via", _at(via, rotation), gripper, _reached(via, VIA_TOL)),
            Phase(f"{name}: to standoff", _at(standoff, rotation), gripper, _reached(standoff, REACH_TOL)),
            Phase(f"{name}: approach", _at(contact, rotation), gripper, _reached(contact, APPROACH_TOL),
                  speed=WORK_STEP, max_steps=15)]


def _back_off(name: str, rotation: np.ndarray) -> Phase:
    def target(state: KitchenState):
        return state.start - BACK_OFF * rotation[:, 2], rotation

    return Phase(f"{name}: back off", target, GRIPPER_OPEN,
                 lambda state: float(np.linalg.norm(state.position - target(state)[0])) < REACH_TOL,
                 max_steps=15)


def _push(name: str, sites: dict, site: str, offset: tuple, travel: float, joint: int,
          finished: Callable[[float], bool]) -> list[Phase]:
    """Closed fingers at ``site`` + ``offset`` (beside the handle), pushed ``travel`` metres along x."""
    contact = sites[site] + np.array(offset)
    end = contact + np.array([travel, 0.0, 0.0])
    return [*_approach(name, contact, LEVEL, GRIPPER_CLOSED),
            Phase(f"{name}: push", _at(end, LEVEL), GRIPPER_CLOSED,
                  lambda state: finished(state.qpos[joint]), speed=WORK_STEP, max_steps=40),
            _back_off(name, LEVEL)]


def _grasp(name: str, contact: np.ndarray, rotation: np.ndarray) -> list[Phase]:
    return [*_approach(name, contact, rotation, GRIPPER_OPEN),
            Phase(f"{name}: close", _at(contact, rotation), GRIPPER_CLOSED, _waited(GRASP_STEPS))]


def _release(name: str, rotation_of: Callable[[KitchenState], np.ndarray]) -> Phase:
    return Phase(f"{name}: release", lambda state: (state.start, rotation_of(state)), GRIPPER_OPEN,
                 _waited(GRASP_STEPS))


def microwave_phases(sites: dict, hinge: np.ndarray) -> list[Phase]:
    rotation = rot_z(MICROWAVE_YAW) @ LEVEL
    handle = sites["microhandle_site"]
    contact = handle - MICROWAVE_INSET * rotation[:, 2]

    def pull(state: KitchenState):  # the grasp point, carried round the hinge to angle + lead
        angle = state.qpos[MICROWAVE] - ARC_LEAD
        return hinge + rot_z(angle) @ (contact - hinge), rotation

    return [*_grasp("microwave", contact, rotation),
            Phase("microwave: pull", pull, GRIPPER_CLOSED,
                  lambda state: state.qpos[MICROWAVE] < MICROWAVE_DONE, speed=WORK_STEP, max_steps=60),
            _release("microwave", lambda state: rotation), _back_off("microwave", rotation)]


def knob_phases(name: str, site_position: np.ndarray, joint: int) -> list[Phase]:
    contact = site_position + np.array(KNOB_CONTACT)
    turned = rot_y(KNOB_TURN) @ LEVEL
    return [*_grasp(name, contact, LEVEL),
            Phase(f"{name}: turn", _at(contact, turned), GRIPPER_CLOSED,
                  lambda state: state.qpos[joint] < KNOB_DONE, speed=WORK_STEP, max_steps=20),
            _release(name, lambda state: turned), _back_off(name, turned)]


def task_phases(task: str, sites: dict, hinge: np.ndarray) -> list[Phase]:
    if task == "slide cabinet":
        return _push(task, sites, "slide_site", SLIDE_CONTACT, SLIDE_TRAVEL, SLIDE,
                     lambda value: value > SLIDE_DONE)
    if task == "light switch":
        return _push(task, sites, "light_site", LIGHT_CONTACT, LIGHT_TRAVEL, LIGHT,
                     lambda value: value < LIGHT_DONE)
    if task == "microwave":
        return microwave_phases(sites, hinge)
    if task == "bottom burner":
        return knob_phases(task, sites["knob2_site"], BOTTOM_KNOB)
    raise ValueError(f"task={task!r}; the expert scripts {EXPERT_TASKS}")


class KitchenExpert:
    """`act(env) -> float32 [9]`; `reset()` draws a new task order (``order``, names)."""

    def __init__(self, rng: np.random.Generator, noise_std: float = 0.0):
        if noise_std < 0:
            raise ValueError(f"noise_std={noise_std}; expected >= 0 (action units)")
        self.rng = rng
        self.noise_std = float(noise_std)
        self.ik: DifferentialIK | None = None
        self.reset()

    def reset(self) -> None:
        self.order = tuple(EXPERT_TASKS[i] for i in self.rng.permutation(len(EXPERT_TASKS)))
        self.ready, self.ready_steps = False, 0  # the arm has reached the rest posture, steps it took
        self.phases: list[Phase] | None = None  # built from the kitchen's sites at the first act()
        self.phase_start: np.ndarray | None = None
        self.phase_steps = 0
        self.log: list[tuple[str, int]] = []  # (phase name, steps spent): what happened, for debugging

    def act(self, env) -> np.ndarray:
        kitchen = env.unwrapped
        if self.ik is None or self.ik.model is not kitchen.model:
            self.ik = DifferentialIK(kitchen.model)
        if self.phases is None:
            self.phases = self._plan(kitchen)
        qpos = kitchen.data.qpos.copy()
        arm_target, gripper = self._targets(qpos)
        target = np.concatenate([arm_target, [gripper, gripper]])
        target = target + self.ik.gravity_offset(target)  # the actuators are stiff springs: pre-load them
        action = (target - kitchen.observed_robot_qpos) / (2.0 * kitchen.control_dt)  # env: q + 2 a dt
        if self.noise_std > 0:
            action = action + self.noise_std * self.rng.standard_normal(action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _targets(self, qpos: np.ndarray) -> tuple[np.ndarray, float]:
        """(arm joint targets [7], finger target) for this step, before the gravity pre-load."""
        if not self.ready:  # first unfold, in joint space, into the IK's rest posture
            offset = self.ik.rest - qpos[:N_ARM]
            self.ready = float(np.max(np.abs(offset))) < READY_TOL
            self.ready_steps += 1
            if self.ready:
                self.log.append(("unfold", self.ready_steps))
            return qpos[:N_ARM] + np.clip(offset, -JOINT_STEP, JOINT_STEP), GRIPPER_OPEN
        position, rotation = self.ik.pose(qpos[:N_ARM])
        phase = self._current_phase(qpos, position, rotation)
        if phase is None:  # all done: hold the arm where it is
            return qpos[:N_ARM], GRIPPER_OPEN
        goal, goal_rotation = phase.target(KitchenState(qpos, position, rotation, self.phase_start,
                                                        self.phase_steps))
        self.phase_steps += 1
        return self.ik.solve(qpos[:N_ARM], *self._next_pose(position, rotation, goal, goal_rotation,
                                                            phase.speed)), phase.gripper

    def _plan(self, kitchen) -> list[Phase]:
        data, model = kitchen.data, kitchen.model
        sites = {model.site(i).name: data.site_xpos[i].copy() for i in range(model.nsite)}
        hinge = data.xanchor[model.joint(MICROWAVE_HINGE).id].copy()
        return [phase for task in self.order for phase in task_phases(task, sites, hinge)]

    def _current_phase(self, qpos, position, rotation) -> Phase | None:
        while self.phases:
            phase = self.phases[0]
            if self.phase_start is None:
                self.phase_start, self.phase_steps = position.copy(), 0
            state = KitchenState(qpos, position, rotation, self.phase_start, self.phase_steps)
            if not (phase.done(state) or self.phase_steps >= phase.max_steps):
                return phase
            self.log.append((phase.name, self.phase_steps))
            self.phases.pop(0)
            self.phase_start = None
        return None

    @staticmethod
    def _next_pose(position, rotation, goal, goal_rotation, speed) -> tuple[np.ndarray, np.ndarray]:
        """The pose at most ``speed`` metres and MAX_TURN radians from the current one towards the goal."""
        offset = goal - position
        distance = float(np.linalg.norm(offset))
        step_position = goal if distance <= speed else position + offset * (speed / distance)
        turn = rotation_error(goal_rotation, rotation)
        angle = float(np.linalg.norm(turn))
        if angle <= MAX_TURN:
            return step_position, goal_rotation
        import mujoco

        quat, axis = np.zeros(4), turn / angle
        mujoco.mju_axisAngle2Quat(quat, axis, MAX_TURN)
        partial = np.zeros(9)
        mujoco.mju_quat2Mat(partial, quat)
        return step_position, partial.reshape(3, 3) @ rotation

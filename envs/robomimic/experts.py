"""Scripted privileged-state experts for robomimic tasks: state machines over the OSC_POSE delta controller.

An expert reads the simulator (object poses, the controller's gripper frame) and returns 7-D delta actions:
translation toward a phase target, a rotation that keeps the gripper pointing down at a chosen yaw, and the
gripper command. Variety comes from per-episode parameters (approach height, speed gain, grasp depth, carry
height, drop point, hold times) and Gaussian action noise on the arm dimensions.

Frames (robosuite 1.5): the controller's reference is the robot base, which is not rotated, so deltas act in
world axes; rotation deltas act like angular-velocity commands on the measured gripper-site pose. In the site
frame the fingers close along the x column and the gripper points along the z column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

EXPERT_VERSION = "1"
POS_SCALE = 0.05  # m per unit action (OSC_POSE output_max)
ROT_SCALE = 0.5  # rad per unit action
GRIPPER_OPEN, GRIPPER_CLOSE = -1.0, 1.0


def down_orientation(yaw: float) -> np.ndarray:
    """Gripper-site rotation [3, 3] pointing straight down, finger axis at ``yaw`` about world z."""
    closing = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    approach = np.array([0.0, 0.0, -1.0])
    return np.stack([closing, np.cross(approach, closing), approach], axis=1)


def finger_yaw(site_matrix: np.ndarray) -> float:
    """Yaw of the finger-closing axis (site x column) in the world xy plane."""
    return float(np.arctan2(site_matrix[1, 0], site_matrix[0, 0]))


def nearest_symmetric_yaw(target: float, current: float, period: float) -> float:
    """The angle target + k * period closest to ``current``."""
    return current + (target - current + period / 2) % period - period / 2


def body_yaw(quat_wxyz: np.ndarray) -> float:
    """Yaw of a body's x axis from a MuJoCo (wxyz) quaternion."""
    matrix = Rotation.from_quat(np.roll(quat_wxyz, -1)).as_matrix()
    return float(np.arctan2(matrix[1, 0], matrix[0, 0]))


@dataclass
class Phase:
    name: str
    steps: int = 0  # steps spent in this phase


class ScriptedExpert:
    """Base class: phase bookkeeping, noise and the pose-tracking action.

    The action noise (``noise_std``, the collector's diversity) is left out in ``QUIET_PHASES``: the
    millimetre-clearance steps of a task, where a careful demonstrator slows down (ToolHang only)."""

    QUIET_PHASES: frozenset[str] = frozenset()

    def __init__(self, rng: np.random.Generator, noise_std: float = 0.0):
        if noise_std < 0:
            raise ValueError(f"noise_std={noise_std} must be >= 0")
        self.rng = rng
        self.noise_std = noise_std
        self.phase = Phase("start")
        self.params: dict[str, float] = {}

    def reset(self) -> None:
        """Call at the start of every episode: samples this episode's style parameters."""
        self.phase = Phase("start")
        self.params = self.sample_params()

    def sample_params(self) -> dict[str, float]:
        return {"gain": self.rng.uniform(0.8, 1.3)}

    def goto(self, name: str) -> None:
        self.phase = Phase(name)

    def pose_action(
        self, env, target_pos: np.ndarray, target_rot: np.ndarray, gripper: float, max_speed: float = 1.0
    ) -> np.ndarray:
        """Delta action [7] moving the gripper site toward ``target_pos`` / rotation matrix ``target_rot``."""
        ctrl = env.arm_controller
        ctrl.update()
        gain = self.params["gain"]
        move = np.clip(gain * (target_pos - ctrl.ref_pos) / POS_SCALE, -max_speed, max_speed)
        rot_err = Rotation.from_matrix(target_rot @ ctrl.ref_ori_mat.T).as_rotvec()
        turn = np.clip(gain * rot_err / ROT_SCALE, -1.0, 1.0)
        arm = np.concatenate([move, turn])
        if self.noise_std > 0 and self.phase.name not in self.QUIET_PHASES:
            arm = arm + self.rng.normal(0.0, self.noise_std, size=6)
        return np.concatenate([np.clip(arm, -1.0, 1.0), [gripper]])

    def act(self, env) -> np.ndarray:
        self.phase.steps += 1
        return self.step_phase(env)

    def step_phase(self, env) -> np.ndarray:
        raise NotImplementedError


def eef_state(env) -> tuple[np.ndarray, np.ndarray]:
    ctrl = env.arm_controller
    ctrl.update()
    return np.array(ctrl.ref_pos), np.array(ctrl.ref_ori_mat)


class PickExpert(ScriptedExpert):
    """Approach from above, descend, close, lift: the first half of Lift and Can."""

    object_yaw_period: float | None = None  # None: keep the current finger yaw (cylinders)
    approach_xy_tolerance = 0.012  # m: how well the gripper must be over the object before descending

    def object_pos(self, env) -> np.ndarray:
        raise NotImplementedError

    def object_yaw(self, env) -> float:
        raise NotImplementedError

    def sample_params(self) -> dict[str, float]:
        return {
            "gain": self.rng.uniform(0.8, 1.3),
            "approach_height": self.rng.uniform(0.06, 0.11),
            "grasp_depth": self.rng.uniform(-0.012, 0.0),
            "close_steps": int(self.rng.integers(6, 11)),
            "lift_height": self.rng.uniform(0.10, 0.16),
        }

    def grasp_yaw(self, env, current_rot: np.ndarray) -> float:
        if self.object_yaw_period is None:
            if "yaw" not in self.params:
                self.params["yaw"] = finger_yaw(current_rot)
            return self.params["yaw"]
        return nearest_symmetric_yaw(self.object_yaw(env), finger_yaw(current_rot), self.object_yaw_period)

    def pick_phase(self, env) -> np.ndarray | None:
        """Action for the pick phases, or None once the object is lifted (phase 'carry')."""
        eef, rot = eef_state(env)
        obj = self.object_pos(env)
        p = self.params
        if self.phase.name == "start":
            self.goto("approach")
        if self.phase.name == "approach":
            yaw = self.grasp_yaw(env, rot)
            p["locked_yaw"] = yaw
            target = obj + np.array([0.0, 0.0, p["approach_height"]])
            yaw_err = abs(Rotation.from_matrix(down_orientation(yaw) @ rot.T).magnitude())
            if (
                np.linalg.norm((target - eef)[:2]) < self.approach_xy_tolerance
                and abs(target[2] - eef[2]) < 0.03
                and yaw_err < 0.1
            ):
                self.goto("descend")
            return self.pose_action(env, target, down_orientation(yaw), GRIPPER_OPEN)
        if self.phase.name == "descend":
            target = obj + np.array([0.0, 0.0, p["grasp_depth"]])
            if np.linalg.norm(target - eef) < 0.01 or self.phase.steps > 40:
                self.goto("close")
            return self.pose_action(
                env, target, down_orientation(p["locked_yaw"]), GRIPPER_OPEN, max_speed=0.6
            )
        if self.phase.name == "close":
            target = obj + np.array([0.0, 0.0, p["grasp_depth"]])
            if self.phase.steps >= p["close_steps"]:
                p["lift_z"] = obj[2] + p["lift_height"]
                p["lift_xy"] = eef[:2].copy()
                self.goto("lift")
            return self.pose_action(
                env, target, down_orientation(p["locked_yaw"]), GRIPPER_CLOSE, max_speed=0.3
            )
        return None

    def holding(self, env) -> bool:
        """The object moves with the gripper (it is within a few cm of the fingertips)."""
        eef, _ = eef_state(env)
        return bool(np.linalg.norm(self.object_pos(env) - eef) < 0.05)

    def start_over_if_dropped(self, env, eef: np.ndarray, rot: np.ndarray) -> np.ndarray | None:
        """While carrying (lift / transport / lower), an object no longer in the hand was dropped or missed:
        back to the approach, rising 3 cm with the fingers open at ``rot``. None while it is held."""
        carrying = self.phase.name in ("lift", "transport", "lower")
        if carrying and not self.holding(env) and self.phase.steps > 5:
            self.goto("approach")
            return self.pose_action(env, eef + np.array([0, 0, 0.03]), rot, GRIPPER_OPEN)
        return None


class LiftExpert(PickExpert):
    object_yaw_period = np.pi / 2  # the cube is symmetric under 90 degree yaw

    def object_pos(self, env) -> np.ndarray:
        sim_env = env.sim_env
        return np.array(sim_env.sim.data.body_xpos[sim_env.cube_body_id])

    def object_yaw(self, env) -> float:
        sim_env = env.sim_env
        return body_yaw(np.array(sim_env.sim.data.body_xquat[sim_env.cube_body_id]))

    def step_phase(self, env) -> np.ndarray:
        action = self.pick_phase(env)
        if action is not None:
            return action
        eef, _ = eef_state(env)
        p = self.params
        restart = self.start_over_if_dropped(env, eef, down_orientation(p["locked_yaw"]))
        if restart is not None:
            return restart
        target = np.array([p["lift_xy"][0], p["lift_xy"][1], p["lift_z"]])
        return self.pose_action(env, target, down_orientation(p["locked_yaw"]), GRIPPER_CLOSE)


class CanExpert(PickExpert):
    """Pick the can, carry it over the bin wall and drop it ~6.5 cm inside its quadrant, then retreat.

    The quadrant's centre is at the edge of the Panda's reach (the arm stalls ~3.5 cm short), so the drop
    point is measured from the quadrant's corner nearest the robot.
    """

    object_yaw_period = None
    CORNER_INSET = 0.065

    def sample_params(self) -> dict[str, float]:
        params = super().sample_params()
        params.update(
            carry_height=self.rng.uniform(1.00, 1.06),
            drop_dx=self.rng.uniform(-0.015, 0.015),
            drop_dy=self.rng.uniform(-0.015, 0.015),
            drop_clearance=self.rng.uniform(0.015, 0.035),
            release_steps=int(self.rng.integers(5, 9)),
        )
        return params

    def object_pos(self, env) -> np.ndarray:
        sim_env = env.sim_env
        return np.array(sim_env.sim.data.body_xpos[sim_env.obj_body_id["Can"]])

    def drop_xy(self, env) -> np.ndarray:
        sim_env = env.sim_env
        corner = sim_env.bin2_pos[:2]  # the can's quadrant (id 3) starts at bin2_pos and grows in +x, +y
        return corner + self.CORNER_INSET + np.array([self.params["drop_dx"], self.params["drop_dy"]])

    def step_phase(self, env) -> np.ndarray:
        action = self.pick_phase(env)
        if action is not None:
            return action
        eef, _ = eef_state(env)
        p = self.params
        down = down_orientation(p["locked_yaw"])
        restart = self.start_over_if_dropped(env, eef, down)
        if restart is not None:
            return restart
        if self.phase.name == "lift":
            target = np.array([p["lift_xy"][0], p["lift_xy"][1], p["carry_height"]])
            if eef[2] > p["carry_height"] - 0.03:
                self.goto("transport")
            return self.pose_action(env, target, down, GRIPPER_CLOSE)
        if self.phase.name == "transport":
            target = np.append(self.drop_xy(env), p["carry_height"])
            if np.linalg.norm((target - eef)[:2]) < 0.02:
                self.goto("lower")
            return self.pose_action(env, target, down, GRIPPER_CLOSE)
        grasp_offset = p["grasp_depth"]  # eef height above the can's centre while holding it
        floor_z = env.sim_env.bin2_pos[2]
        release_z = floor_z + 0.06 + p["drop_clearance"] + grasp_offset  # 0.06: can centre above its bottom
        if self.phase.name == "lower":
            target = np.append(self.drop_xy(env), release_z)
            if eef[2] < release_z + 0.01 or self.phase.steps > 40:
                self.goto("release")
            return self.pose_action(env, target, down, GRIPPER_CLOSE, max_speed=0.7)
        if self.phase.name == "release":
            if self.phase.steps >= p["release_steps"]:
                self.goto("retreat")
            return self.pose_action(env, eef, down, GRIPPER_OPEN)
        target = np.append(eef[:2], p["carry_height"])  # retreat (and stay) above the bin
        return self.pose_action(env, target, down, GRIPPER_OPEN)


class ToolHangExpert(ScriptedExpert):
    """ToolHang: stand the frame up and insert it into the stand's square tube (hook pointing to the robot's
    right, -y), then pick the wrench by its grip from above, turn it flat (yaw only) so its handle points
    along the hook toward the rod, lower its hole flat over the post at the hook's free end until the ring
    rests on the hook, and let go: the handle, beyond the free end, swings down and the ring turns onto the
    hook. The hand points down throughout the tool half (the earlier design turned the wrench upright with
    the hand horizontal near the robot, where the Panda's joint 5 reached its limit). A wrench still propped
    on the post shortly after is pressed down by its handle (`press_if_wedged`).

    Both halves steer with the held object's own measured orientation (the frame's rod, the wrench's hole
    axis), so a grasp that slipped is corrected rather than ignored. The two insertions run without the
    collector's action noise (`QUIET_PHASES`); docs/experiments/robomimic.md has the measured rates.
    """

    # Without noise here: the rod (7.5 mm) enters the 12 mm tube, and the wrench's hole (19.4 mm) goes over
    # the 7.5 mm post; at sigma = 0.1 the noise alone moves the rod's tip ~9 mm a step.
    QUIET_PHASES = frozenset({"frame_above", "frame_insert", "frame_release",
                              "tool_over_hook", "tool_lower", "tool_release"})
    TUBE_XY = np.array([-0.0805, 0.045])  # centre of the stand's square tube (walls stand_wall_0..3)
    MAX_TURN = 0.25  # rad per step of orientation correction toward the goal
    HOOK_YAW = -np.pi / 2  # hook pointing to the robot's right (-y): the hand stays over free table there
    # The wrench's hole1 (inner apothem 9.7 mm, 7 mm thick) goes flat over the 7.5 mm square post that rises
    # 1.2 cm at the hook's free end. Its centre RING_IN past the free end: nearer, the ring swings onto the
    # post's top when let go; 9 mm lands it on the post.
    RING_IN = 0.005
    RING_ABOVE = 0.035  # m above the hook's axis while moving over the post (the post's top is at 15.75 mm)
    RING_REST = 0.008  # let go once the hole is lowered to this height (resting on the hook at ~7 mm)
    # Height the open hand crosses to the wrench at, above the hook (~1.035 m): at 1.2 m a wrench lying ~65 cm
    # out from the base stretched the arm straight (joint 4 at its limit) and the descent stalled there.
    OVER_Z = 1.12
    TURN_STEPS = 80  # a turn in place that has not converged by then goes on anyway (one stalled at 0.05 rad)
    CHECK_STEPS = 10  # steps after backing off for the let-go wrench to turn onto the hook
    MAX_PRESSES = 4  # presses on a wedged wrench's handle (press_if_wedged)
    PRESS_AT = 0.85  # where along the handle, from the hole (0) to the grip (1)
    PRESS_DEPTH = 0.06  # pushing toward this far below where the handle was
    PRESS_STEPS = 20  # steps pushing down

    def sample_params(self) -> dict[str, float]:
        return {"gain": self.rng.uniform(0.9, 1.1), "lift_z": self.rng.uniform(1.10, 1.14)}

    def site(self, env, name: str) -> np.ndarray:
        sim_env = env.sim_env
        return np.array(sim_env.sim.data.site_xpos[sim_env.obj_site_id[name]])

    def geom(self, env, name: str) -> np.ndarray:
        sim = env.sim_env.sim
        return np.array(sim.data.geom_xpos[sim.model.geom_name2id(name)])

    def frame_axes(self, env) -> np.ndarray:
        """[3, 3] columns: hook direction, z x hook, rod direction (tip end -> hook end)."""
        mount, corner = self.site(env, "frame_mount_site"), self.site(env, "frame_intersection_site")
        rod = (corner - mount) / np.linalg.norm(corner - mount)
        hook = self.site(env, "frame_hang_site") - corner
        hook = hook - hook.dot(rod) * rod
        hook /= np.linalg.norm(hook)
        return np.stack([hook, np.cross(rod, hook), rod], axis=1)

    def tool_axes(self, env) -> np.ndarray:
        """[3, 3] columns: handle (grip -> hole), hole axis, their cross product."""
        sim = env.sim_env.sim
        handle = self.site(env, "tool_hole1_center") - self.geom(env, "tool_grip_g0")
        handle /= np.linalg.norm(handle)
        axis = np.array(sim.data.body_xmat[sim.model.body_name2id("tool_root")]).reshape(3, 3)[:, 2]
        axis = axis - axis.dot(handle) * handle
        axis /= np.linalg.norm(axis)
        return np.stack([handle, axis, np.cross(handle, axis)], axis=1)

    def steer(
        self, current_axes: np.ndarray, wanted_axes: np.ndarray, rot: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Gripper target turning the held object from current_axes toward wanted_axes; and the angle left."""
        correction = Rotation.from_matrix(wanted_axes @ current_axes.T)
        angle = correction.magnitude()
        step = correction.as_rotvec() * min(1.0, self.MAX_TURN / max(angle, 1e-6))
        return Rotation.from_rotvec(step).as_matrix() @ rot, angle

    def grasp_yaw(self, axis: np.ndarray, rot: np.ndarray) -> float:
        """Finger yaw closing across a horizontal ``axis`` (nearest of the two symmetric choices)."""
        closing = np.cross(axis, [0.0, 0.0, 1.0])
        return nearest_symmetric_yaw(float(np.arctan2(closing[1], closing[0])), finger_yaw(rot), np.pi)

    def step_phase(self, env) -> np.ndarray:
        if self.phase.name == "start":
            self.goto("frame_approach")
        if self.phase.name.startswith("frame"):
            return self.frame_phase(env)
        return self.tool_phase(env)

    def pick(self, env, prefix: str, grip: np.ndarray, yaw: float, next_phase: str) -> np.ndarray:
        """approach -> descend -> close on ``grip``, then ``next_phase``."""
        eef, _ = eef_state(env)
        p, down, name = self.params, down_orientation(yaw), self.phase.name
        if name == f"{prefix}_approach":
            target = grip + [0.0, 0.0, 0.08]
            if np.linalg.norm(target - eef) < 0.015:
                self.goto(f"{prefix}_descend")
            return self.pose_action(env, target, down, GRIPPER_OPEN)
        target = grip + [0.0, 0.0, -0.005]
        if name == f"{prefix}_descend":
            if np.linalg.norm(target - eef) < 0.008 or self.phase.steps > 40:
                self.goto(f"{prefix}_close")
            return self.pose_action(env, target, down, GRIPPER_OPEN, max_speed=0.5)
        if self.phase.steps > 10:
            p["lift_pos"] = np.array([eef[0], eef[1], p["lift_z"]])
            self.goto(next_phase)
        return self.pose_action(env, target, down, GRIPPER_CLOSE, max_speed=0.3)

    def lift_then_turn(self, env, phases: tuple[str, str, str], eef: np.ndarray, rot: np.ndarray,
                       target_rot: np.ndarray, angle: float, tolerance: float) -> np.ndarray:
        """Phases (lift, turn, next): rise to lift_pos keeping the grasp orientation, then turn in place to
        target_rot until within `tolerance` rad, then go to `next`."""
        lift, turn, after = phases
        lift_pos = self.params["lift_pos"]
        if self.phase.name == lift:
            if eef[2] > lift_pos[2] - 0.03:
                self.goto(turn)
            return self.pose_action(env, lift_pos, rot, GRIPPER_CLOSE)
        if (angle < tolerance and self.phase.steps > 5) or self.phase.steps > self.TURN_STEPS:
            self.goto(after)
        return self.pose_action(env, lift_pos, target_rot, GRIPPER_CLOSE)

    def frame_phase(self, env) -> np.ndarray:
        eef, rot = eef_state(env)
        p, name = self.params, self.phase.name
        if name in ("frame_approach", "frame_descend", "frame_close"):
            if name == "frame_approach":
                p["frame_yaw"] = self.grasp_yaw(self.frame_axes(env)[:, 2], rot)
            return self.pick(env, "frame", self.geom(env, "frame_grip_frame"), p["frame_yaw"], "frame_lift")
        current = self.frame_axes(env)
        yaw = self.HOOK_YAW  # a multiple of 90 degrees, as the square rod must match the tube
        wanted = np.stack(
            [[np.cos(yaw), np.sin(yaw), 0.0], [-np.sin(yaw), np.cos(yaw), 0.0], [0.0, 0.0, 1.0]], 1
        )
        target_rot, angle = self.steer(current, wanted, rot)
        tip = self.site(env, "frame_tip_site")
        if name in ("frame_lift", "frame_stand_up"):
            return self.lift_then_turn(env, ("frame_lift", "frame_stand_up", "frame_above"), eef, rot,
                                       target_rot, angle, tolerance=0.05)
        if name == "frame_above":
            want = np.append(self.TUBE_XY, 0.99)
            if np.linalg.norm(want - tip) < 0.006 and angle < 0.03:
                self.goto("frame_insert")
            return self.pose_action(env, eef + (want - tip), target_rot, GRIPPER_CLOSE, max_speed=0.5)
        if name == "frame_insert":
            move = np.append(self.TUBE_XY, 0.80) - tip
            move[2] = max(move[2], -0.01)  # slide in slowly
            if tip[2] < 0.84 or self.phase.steps > 80:
                self.goto("frame_release")
            return self.pose_action(env, eef + move, target_rot, GRIPPER_CLOSE, max_speed=0.4)
        return self.release_and_back_off(env, "frame", "tool_up")

    def release_and_back_off(self, env, prefix: str, next_phase: str) -> np.ndarray:
        """Open in place, then withdraw along the gripper's approach axis (never drag the object)."""
        eef, rot = eef_state(env)
        p = self.params
        if self.phase.name == f"{prefix}_release":
            if self.phase.steps == 1:
                p["release_pos"], p["release_rot"] = eef, rot
            if self.phase.steps > 8:
                self.goto(f"{prefix}_back_off")
            return self.pose_action(env, p["release_pos"], p["release_rot"], GRIPPER_OPEN)
        back = p["release_pos"] - 0.10 * p["release_rot"][:, 2]
        if np.linalg.norm(back - eef) < 0.02 or self.phase.steps > 40:
            self.goto(next_phase)
        return self.pose_action(env, back, p["release_rot"], GRIPPER_OPEN, max_speed=0.5)

    def tool_phase(self, env) -> np.ndarray:
        eef, rot = eef_state(env)
        p, name = self.params, self.phase.name
        if name == "tool_up":  # rise above the assembled frame before turning the hand down
            if self.phase.steps == 1:
                p["up_pos"] = np.array([eef[0] - 0.08, eef[1], 1.12])
            if eef[2] > 1.09 or self.phase.steps > 40:
                self.goto("tool_turn_down")
            return self.pose_action(env, p["up_pos"], rot, GRIPPER_OPEN, max_speed=0.6)
        if name == "tool_turn_down":
            p["tool_yaw"] = self.grasp_yaw(self.tool_axes(env)[:, 0], rot)
            down = down_orientation(p["tool_yaw"])
            if Rotation.from_matrix(down @ rot.T).magnitude() < 0.05 or self.phase.steps > 40:
                self.goto("tool_over")
            return self.pose_action(env, p["up_pos"], down, GRIPPER_OPEN, max_speed=0.5)
        grip = self.geom(env, "tool_grip_g0")
        if name == "tool_over":  # cross over to the wrench high, clear of the frame
            target = np.array([grip[0], grip[1], self.OVER_Z])
            if np.linalg.norm((target - eef)[:2]) < 0.02 or self.phase.steps > 60:
                self.goto("tool_approach")
            return self.pose_action(env, target, down_orientation(p["tool_yaw"]), GRIPPER_OPEN)
        if name in ("tool_approach", "tool_descend", "tool_close"):
            return self.pick(env, "tool", grip, p["tool_yaw"], "tool_lift")
        return self.hang_tool(env, eef, rot)

    @staticmethod
    def over_hook_axes(inward: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Wrench axes (tool_axes columns) to lower it over the hook with: flat, its hole axis vertical on
        the side it is now, the handle pointing along ``inward`` (the hook, free end -> rod)."""
        up = np.array([0.0, 0.0, np.sign(current[2, 1]) or 1.0])
        return np.stack([inward, up, np.cross(inward, up)], axis=1)

    def hang_tool(self, env, eef: np.ndarray, rot: np.ndarray) -> np.ndarray:
        name = self.phase.name
        hang, corner = self.site(env, "frame_hang_site"), self.site(env, "frame_intersection_site")
        inward = np.append((corner - hang)[:2], 0.0)  # along the hook, from its free end toward the rod
        inward /= np.linalg.norm(inward)
        current = self.tool_axes(env)
        target_rot, angle = self.steer(current, self.over_hook_axes(inward, current), rot)
        hole = self.site(env, "tool_hole1_center")
        over_post = hang + self.RING_IN * inward
        if name in ("tool_lift", "tool_turn"):
            return self.lift_then_turn(env, ("tool_lift", "tool_turn", "tool_over_hook"), eef, rot,
                                       target_rot, angle, tolerance=0.03)
        if name == "tool_over_hook":  # the hole high over the post, then down till the ring rests on the hook
            want = over_post + [0.0, 0.0, self.RING_ABOVE]
            if (np.linalg.norm(want - hole) < 0.004 and angle < 0.03) or self.phase.steps > 80:
                self.goto("tool_lower")
            return self.pose_action(env, eef + (want - hole), target_rot, GRIPPER_CLOSE, max_speed=0.4)
        if name == "tool_lower":
            want = over_post + [0.0, 0.0, self.RING_REST]
            step = want - hole
            step[2] = max(step[2], -0.006)
            if hole[2] < want[2] + 0.002 or self.phase.steps > 50:
                self.goto("tool_release")
            return self.pose_action(env, eef + step, target_rot, GRIPPER_CLOSE, max_speed=0.3)
        if name in ("tool_release", "tool_back_off"):
            return self.release_and_back_off(env, "tool", "tool_check")
        return self.press_if_wedged(env, eef)

    def press_if_wedged(self, env, eef: np.ndarray) -> np.ndarray:
        """After letting go: a wrench that has not turned onto the hook within CHECK_STEPS steps is wedged on
        the post at the hook's free end, its handle tilted up (~33 degrees below the horizontal instead of
        ~60 when hung); pressing the handle down with the closed gripper turns the ring onto the hook."""
        p, name = self.params, self.phase.name
        down = down_orientation(p["tool_yaw"])
        if name == "tool_check":
            presses = p.get("presses", 0)
            if (self.phase.steps > self.CHECK_STEPS and presses < self.MAX_PRESSES
                    and not env.sim_env._check_success()):
                p["presses"] = presses + 1
                self.goto("tool_press_above")
            return self.pose_action(env, p.get("press_up", eef), down, GRIPPER_OPEN, max_speed=0.5)
        if name == "tool_press_above":  # the closed hand over the handle, PRESS_AT of the way to the grip
            hole, grip = self.site(env, "tool_hole1_center"), self.geom(env, "tool_grip_g0")
            p["press_point"] = hole + self.PRESS_AT * (grip - hole)
            target = p["press_point"] + [0.0, 0.0, 0.05]
            if np.linalg.norm(target - eef) < 0.01 or self.phase.steps > 40:
                self.goto("tool_press")
            return self.pose_action(env, target, down, GRIPPER_CLOSE, max_speed=0.5)
        if name == "tool_press":
            if self.phase.steps > self.PRESS_STEPS:
                p["press_up"] = p["press_point"] + [0.0, 0.0, 0.10]
                self.goto("tool_press_up")
            return self.pose_action(env, p["press_point"] - [0.0, 0.0, self.PRESS_DEPTH], down, GRIPPER_CLOSE,
                                    max_speed=0.3)
        if np.linalg.norm(p["press_up"] - eef) < 0.02 or self.phase.steps > 30:  # tool_press_up
            self.goto("tool_check")
        return self.pose_action(env, p["press_up"], down, GRIPPER_CLOSE, max_speed=0.5)


class SquareExpert(PickExpert):
    """NutAssemblySquare: grasp the square nut by its handle, carry it over the square peg, turn it to the
    peg's yaw (4-fold symmetric), lower it over the peg and let go, then rise.

    The pick phases act on the handle (its site, 5.4 cm from the nut's centre along the nut's x axis), the
    fingers closing across it. While carrying, the expert steers with the nut's own measured pose: the
    gripper moves by the nut centre's offset from the peg and turns by the nut's yaw error, so a grasp that
    slipped is corrected rather than ignored. A nut that is not on the peg 20 steps after the release (wedged
    on the peg's edge, or fallen) is picked up again.
    """

    object_yaw_period = np.pi  # the handle is symmetric under a half turn of the fingers
    approach_xy_tolerance = 0.005  # open fingers miss the nut's ring by ~1 cm only
    PEG_YAW = 0.0  # the square peg's sides are along the world axes (pegs_arena.xml)
    PEG_TOP = 0.95  # peg1 body at z 0.85, half-height 0.1

    def sample_params(self) -> dict[str, float]:
        params = super().sample_params()
        params.update(
            grasp_depth=self.rng.uniform(-0.004, 0.004),  # grip site below/above the handle's centre
            grasp_out=self.rng.uniform(0.004, 0.010),  # grasp beyond the handle's site, away from the ring
            close_steps=int(self.rng.integers(10, 15)),  # the fingers take ~8 steps to reach the handle
            carry_height=self.rng.uniform(1.02, 1.08),
            peg_dx=self.rng.uniform(-0.003, 0.003),
            peg_dy=self.rng.uniform(-0.003, 0.003),
            release_z=self.rng.uniform(0.90, 0.93),  # nut centre height at release (peg top 0.95)
            release_steps=int(self.rng.integers(5, 9)),
        )
        return params

    def object_pos(self, env) -> np.ndarray:
        """Grasp point: on the handle's axis, ``grasp_out`` beyond its site (open fingers clear the ring)."""
        sim_env = env.sim_env
        handle = np.array(sim_env.sim.data.site_xpos[sim_env.object_site_ids[sim_env.nut_id]])
        yaw = self.nut_yaw(env)
        return handle + self.params["grasp_out"] * np.array([np.cos(yaw), np.sin(yaw), 0.0])

    def nut_pos(self, env) -> np.ndarray:
        sim_env = env.sim_env
        return np.array(sim_env.sim.data.body_xpos[sim_env.obj_body_id["SquareNut"]])

    def nut_yaw(self, env) -> float:
        sim_env = env.sim_env
        return body_yaw(np.array(sim_env.sim.data.body_xquat[sim_env.obj_body_id["SquareNut"]]))

    def object_yaw(self, env) -> float:
        return self.nut_yaw(env) + np.pi / 2  # fingers close across the handle (along the nut's y axis)

    def goal_yaw(self, nut_yaw: float) -> float:
        """Nut yaw to place it at: the peg's yaw modulo 90 degrees nearest the current one, among those that
        keep the handle off the far side (handle along +x puts the hand beyond the Panda's reach)."""
        options = [nearest_symmetric_yaw(self.PEG_YAW + k * np.pi / 2, nut_yaw, 2 * np.pi) for k in (1, 2, 3)]
        return min(options, key=lambda yaw: abs(yaw - nut_yaw))

    def peg_xy(self, env) -> np.ndarray:
        sim_env = env.sim_env
        peg = np.array(sim_env.sim.data.body_xpos[sim_env.peg1_body_id][:2])
        return peg + np.array([self.params["peg_dx"], self.params["peg_dy"]])

    def step_phase(self, env) -> np.ndarray:
        action = self.pick_phase(env)
        if action is not None:
            return action
        eef, rot = eef_state(env)
        p = self.params
        restart = self.start_over_if_dropped(env, eef, rot)
        if restart is not None:
            return restart
        if self.phase.name == "lift":
            target = np.array([p["lift_xy"][0], p["lift_xy"][1], p["carry_height"]])
            if eef[2] > p["carry_height"] - 0.03:
                p["nut_goal_yaw"] = self.goal_yaw(self.nut_yaw(env))
                self.goto("transport")
            return self.pose_action(env, target, down_orientation(p["locked_yaw"]), GRIPPER_CLOSE)
        nut = self.nut_pos(env)
        yaw_err = float(np.angle(np.exp(1j * (p["nut_goal_yaw"] - self.nut_yaw(env)))))
        turn = down_orientation(finger_yaw(rot) + yaw_err)  # the nut turns with the hand
        offset = np.append(self.peg_xy(env) - nut[:2], 0.0)  # move the hand by the nut's xy error
        if self.phase.name == "transport":
            target = eef + offset
            target[2] = p["carry_height"]
            if np.linalg.norm(offset) < 0.004 and abs(yaw_err) < 0.04:
                self.goto("lower")
            return self.pose_action(env, target, turn, GRIPPER_CLOSE)
        if self.phase.name == "lower":
            target = eef + offset
            # Over the peg's top only once centred (an off-centre nut wedges on the peg's edge): hover 5 mm
            # above it until the nut is within 6 mm (the hole's clearance is 6.75 mm a side); once the ring is
            # around the peg, keep going down unless it is 1 cm off (wedged: back up to the hover height).
            engaged = nut[2] < self.PEG_TOP + 0.005  # the nut's bottom is 5 mm below the peg's top
            centred = np.linalg.norm(offset) < (0.010 if engaged else 0.006)
            nut_z = p["release_z"] if centred else self.PEG_TOP + 0.015
            target[2] = eef[2] + (nut_z - nut[2])
            if nut[2] < p["release_z"] + 0.005 or self.phase.steps > 80:
                self.goto("release")
            return self.pose_action(env, target, turn, GRIPPER_CLOSE, max_speed=0.5)
        if self.phase.name == "release":
            if self.phase.steps == 1:
                p["release_pos"], p["release_rot"] = eef, rot
            if self.phase.steps >= p["release_steps"]:
                self.goto("retreat")
            return self.pose_action(env, p["release_pos"], p["release_rot"], GRIPPER_OPEN)
        if self.phase.steps > 20 and not env.is_success():  # wedged on the peg or fell beside it: again
            self.goto("approach")
        target = np.append(p["release_pos"][:2], p["carry_height"])  # retreat straight up
        return self.pose_action(env, target, p["release_rot"], GRIPPER_OPEN, max_speed=0.5)


EXPERTS = {"lift": LiftExpert, "can": CanExpert, "square": SquareExpert, "tool_hang": ToolHangExpert}


def make_expert(task: str, rng: np.random.Generator, noise_std: float = 0.0) -> ScriptedExpert:
    if task not in EXPERTS:
        raise ValueError(f"no scripted expert for task={task!r}; available: {sorted(EXPERTS)}")
    return EXPERTS[task](rng, noise_std)

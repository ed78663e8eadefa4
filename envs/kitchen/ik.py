"""Differential inverse kinematics of the kitchen's Franka arm through MuJoCo's site Jacobian.

Damped least squares on the 6-D pose error of the ``end_effector`` site, with a null-space pull towards a
rest posture that keeps the arm clear of its joint limits. It runs on a private ``MjData`` so the
simulation's own state is never touched.
"""

from __future__ import annotations

import numpy as np

EE_SITE = "end_effector"
N_ARM = 7
DAMPING = 0.05  # DLS damping (m, rad): bounded joint steps near singular poses
NULLSPACE_GAIN = 0.3  # fraction of the rest-posture offset corrected per iteration, in the null space
LIMIT_MARGIN = 0.05  # rad kept from every joint limit
# A posture that reaches the middle of the kitchen (x -0.3, y 0.42, z 2.3) with the gripper level and
# pointing into it, far from the joint limits (multi-start search offline)
REST_POSTURE = np.array([1.373, -0.538, -0.455, -2.537, -2.052, 0.428, -1.060])


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """[3] axis * angle of target @ current.T (world frame), from 3x3 rotation matrices."""
    import mujoco

    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, (target @ current.T).reshape(-1))
    error = np.zeros(3)
    mujoco.mju_quat2Vel(error, quat, 1.0)
    return error


class DifferentialIK:
    """`solve(arm_qpos, position, rotation) -> arm qpos [7]`: a few damped steps towards the pose;
    `pose(arm_qpos) -> (position [3], rotation [3, 3])` of the end-effector site; `gravity_offset(qpos)` for
    the position actuators."""

    def __init__(self, model, iterations: int = 3):
        import mujoco

        self.mujoco, self.model = mujoco, model
        self.data = mujoco.MjData(model)
        self.site = model.site(EE_SITE).id
        self.low = model.jnt_range[:N_ARM, 0] + LIMIT_MARGIN
        self.high = model.jnt_range[:N_ARM, 1] - LIMIT_MARGIN
        self.iterations = iterations
        self.rest = np.clip(REST_POSTURE, self.low, self.high)

    def pose(self, arm_qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.data.qpos[:N_ARM] = arm_qpos
        self.mujoco.mj_kinematics(self.model, self.data)
        self.mujoco.mj_comPos(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def gravity_offset(self, qpos: np.ndarray) -> np.ndarray:
        """[9]: what to add to the robot's position-actuator targets (7 arm joints, 2 fingers) so that they
        hold ``qpos`` [9] against gravity (actuator force kp * (target - q) = gravity torque)."""
        self.data.qpos[:len(qpos)] = qpos
        self.data.qvel[:] = 0.0
        self.mujoco.mj_kinematics(self.model, self.data)
        self.mujoco.mj_comPos(self.model, self.data)
        self.mujoco.mj_comVel(self.model, self.data)
        torque = np.zeros(self.model.nv)
        self.mujoco.mj_rne(self.model, self.data, 0, torque)
        gains = self.model.actuator_gainprm[:len(qpos), 0]
        return torque[:len(qpos)] / gains

    def solve(self, arm_qpos: np.ndarray, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        q = np.array(arm_qpos, dtype=np.float64)
        jac_pos, jac_rot = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        for _ in range(self.iterations):
            current, current_rot = self.pose(q)
            error = np.concatenate([position - current, rotation_error(rotation, current_rot)])
            self.mujoco.mj_jacSite(self.model, self.data, jac_pos, jac_rot, self.site)
            jac = np.vstack([jac_pos, jac_rot])[:, :N_ARM]  # [6, 7]
            inverse = jac.T @ np.linalg.inv(jac @ jac.T + DAMPING**2 * np.eye(6))  # [7, 6]
            null = np.eye(N_ARM) - inverse @ jac
            q = np.clip(q + inverse @ error + null @ (NULLSPACE_GAIN * (self.rest - q)), self.low, self.high)
        return q

"""The MuJoCo scene of block pushing: a table, two 4 cm cubes, a cylinder pusher, two target zones.

Units are metres and seconds, in IBC's workspace frame (x forward, y left; the blocks start near y = -0.2,
the targets sit near y = +0.2). The cubes have free joints and rest on the table under gravity, so table
friction, contact patches and yaw come out of the contact model, not out of hand-made damping. The pusher
is a cylinder on two slide joints driven by position actuators (a stiff PD loop towards the commanded
target), hovering 5 mm above the table so it touches the cubes only. The targets are visual sites: a block
is in a zone when its centre is within GOAL_TOLERANCE of the zone's centre (IBC's test, which ignores yaw),
so a zone is drawn as a disk of that radius.

Why MuJoCo: it is already installed for robosuite (pinned in pyproject), maintained, deterministic for a
given initial state, and a control step costs well under a millisecond here; pybullet, which IBC and
Diffusion Policy use, would be one more dependency.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

BLOCK_HALF = 0.02  # half side of a cube (IBC's 4 cm blocks)
BLOCK_MASS = 0.05  # kg
PUSHER_RADIUS = 0.01
PUSHER_MASS = 0.5
PUSHER_KP = 300.0  # N/m: omega = sqrt(kp / m) ~ 24.5 rad/s ...
PUSHER_KV = 24.5  # N s/m: ... critically damped (2 sqrt(kp m)), so a target is tracked without overshoot
FRICTION = 0.5  # table-cube, cube-cube and pusher-cube sliding friction (IBC's cube: 0.5)
GOAL_TOLERANCE = 0.05  # a block is in a zone when its centre is closer than this to the zone's centre
TIMESTEP = 0.002
CONTROL_HZ = 10
SUBSTEPS = round(1.0 / (CONTROL_HZ * TIMESTEP))  # physics steps per control step
# IBC's WORKSPACE_BOUNDS: the pusher's commanded target is clipped to this box
WORKSPACE_LOW = np.array([0.15, -0.5])
WORKSPACE_HIGH = np.array([0.7, 0.5])
# collision bits: cubes touch the table, each other and the pusher; the pusher never touches the table
_TABLE_BITS, _PUSHER_BITS, _BLOCK_BITS = 1, 2, 3

_XML = f"""
<mujoco model="blockpush">
  <option timestep="{TIMESTEP}" integrator="implicitfast" gravity="0 0 -9.81"/>
  <default>
    <geom friction="{FRICTION} 0.005 0.0001" solref="0.005 1"/>
  </default>
  <worldbody>
    <geom name="table" type="plane" size="1 1 0.01" pos="0.4 0 0"
          contype="{_TABLE_BITS}" conaffinity="{_TABLE_BITS}"/>
    <site name="target0" type="cylinder" size="{GOAL_TOLERANCE} 0.0005" pos="0.28 0.2 0.0005"
          rgba="0 0.8 0 0.5"/>
    <site name="target1" type="cylinder" size="{GOAL_TOLERANCE} 0.0005" pos="0.52 0.2 0.0005"
          rgba="0 0.5 0.8 0.5"/>
    <body name="pusher" pos="0 0 {BLOCK_HALF}">
      <joint name="pusher_x" type="slide" axis="1 0 0"/>
      <joint name="pusher_y" type="slide" axis="0 1 0"/>
      <geom name="pusher" type="cylinder" size="{PUSHER_RADIUS} 0.015" mass="{PUSHER_MASS}"
            contype="{_PUSHER_BITS}" conaffinity="{_PUSHER_BITS}" rgba="0.2 0.2 0.2 1"/>
    </body>
    <body name="block0" pos="0.4 -0.2 {BLOCK_HALF}">
      <freejoint name="block0"/>
      <geom name="block0" type="box" size="{BLOCK_HALF} {BLOCK_HALF} {BLOCK_HALF}" mass="{BLOCK_MASS}"
            contype="{_BLOCK_BITS}" conaffinity="{_BLOCK_BITS}" rgba="0.4 0.4 1 1"/>
    </body>
    <body name="block1" pos="0.5 -0.2 {BLOCK_HALF}">
      <freejoint name="block1"/>
      <geom name="block1" type="box" size="{BLOCK_HALF} {BLOCK_HALF} {BLOCK_HALF}" mass="{BLOCK_MASS}"
            contype="{_BLOCK_BITS}" conaffinity="{_BLOCK_BITS}" rgba="1 0.5 0.2 1"/>
    </body>
  </worldbody>
  <actuator>
    <position name="pusher_x" joint="pusher_x" kp="{PUSHER_KP}" kv="{PUSHER_KV}"/>
    <position name="pusher_y" joint="pusher_y" kp="{PUSHER_KP}" kv="{PUSHER_KV}"/>
  </actuator>
</mujoco>
"""


def wrap_yaw(yaw: float | np.ndarray) -> float | np.ndarray:
    """A cube looks the same after a quarter turn: yaw in [0, pi/2)."""
    return np.mod(yaw, math.pi / 2)


class BlockPushWorld:
    """One MuJoCo model + data. Poses are (x, y, yaw); the pusher is (x, y)."""

    def __init__(self):
        self.model = mujoco.MjModel.from_xml_string(_XML)
        self.data = mujoco.MjData(self.model)
        self._block_qpos = [self.model.jnt_qposadr[self.model.joint(f"block{i}").id] for i in range(2)]
        self._block_qvel = [self.model.jnt_dofadr[self.model.joint(f"block{i}").id] for i in range(2)]
        self._target_sites = [self.model.site(f"target{i}").id for i in range(2)]
        self.target_poses = np.zeros((2, 3))

    def set_state(self, block_poses: np.ndarray, target_poses: np.ndarray, pusher_xy: np.ndarray) -> None:
        """block_poses [2, 3], target_poses [2, 3], pusher_xy [2]; everything at rest."""
        mujoco.mj_resetData(self.model, self.data)
        for i, (x, y, yaw) in enumerate(np.asarray(block_poses, dtype=np.float64)):
            adr = self._block_qpos[i]
            self.data.qpos[adr:adr + 7] = [x, y, BLOCK_HALF, math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
        self.target_poses = np.array(target_poses, dtype=np.float64)
        for site, (x, y, yaw) in zip(self._target_sites, self.target_poses, strict=True):
            self.model.site_pos[site] = [x, y, 0.0005]
            self.model.site_quat[site] = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
        self.data.qpos[:2] = pusher_xy
        self.data.ctrl[:] = pusher_xy
        mujoco.mj_forward(self.model, self.data)

    def step(self, target_xy: np.ndarray) -> None:
        """One control step: SUBSTEPS physics steps with the pusher's actuators set to ``target_xy``."""
        self.data.ctrl[:] = target_xy
        mujoco.mj_step(self.model, self.data, nstep=SUBSTEPS)

    @property
    def pusher_xy(self) -> np.ndarray:
        return self.data.qpos[:2].copy()

    @property
    def pusher_velocity(self) -> np.ndarray:
        return self.data.qvel[:2].copy()

    def block_poses(self) -> np.ndarray:
        """[2, 3] float64: x, y, yaw (unwrapped, in (-pi, pi]) of each cube."""
        poses = np.zeros((2, 3))
        for i, adr in enumerate(self._block_qpos):
            x, y, _, w, qx, qy, qz = self.data.qpos[adr:adr + 7]
            poses[i] = x, y, math.atan2(2 * (w * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))
        return poses

    def block_heights(self) -> np.ndarray:
        """[2] z of each cube's centre (BLOCK_HALF while it rests on the table)."""
        return np.array([self.data.qpos[adr + 2] for adr in self._block_qpos])

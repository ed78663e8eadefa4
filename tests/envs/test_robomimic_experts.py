"""Scripted robomimic experts: geometry helpers, determinism, success on fixed seeds."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("robosuite")

from envs.robomimic.env import RobomimicEnv  # noqa: E402
from envs.robomimic.experts import (  # noqa: E402
    SquareExpert,
    ToolHangExpert,
    down_orientation,
    finger_yaw,
    make_expert,
    nearest_symmetric_yaw,
)


def run_episode(env: RobomimicEnv, task: str, seed: int, noise_std: float = 0.1) -> tuple[bool, int]:
    expert = make_expert(task, np.random.default_rng(seed), noise_std)
    expert.reset()
    env.reset(seed=seed)
    for step in range(1, env.config.max_steps + 1):
        _, _, terminated, truncated, info = env.step(expert.act(env))
        if terminated or truncated:
            return info["is_success"], step
    return False, env.config.max_steps


@pytest.mark.parametrize("yaw", [0.0, 0.7, -2.5, np.pi])
def test_down_orientation_is_a_rotation_pointing_down(yaw):
    matrix = down_orientation(yaw)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(matrix) == pytest.approx(1.0)
    np.testing.assert_allclose(matrix[:, 2], [0, 0, -1])
    assert finger_yaw(matrix) == pytest.approx(np.arctan2(np.sin(yaw), np.cos(yaw)))


def test_nearest_symmetric_yaw():
    period = np.pi / 2
    assert nearest_symmetric_yaw(0.1, 1.6, period) == pytest.approx(0.1 + period)
    assert nearest_symmetric_yaw(0.1, -1.4, period) == pytest.approx(0.1 - period)
    for current in np.linspace(-4, 4, 17):
        result = nearest_symmetric_yaw(0.3, current, period)
        assert abs(result - current) <= period / 2 + 1e-9
        assert ((result - 0.3) / period) == pytest.approx(round((result - 0.3) / period))


def test_unknown_task_and_negative_noise():
    with pytest.raises(ValueError, match="no scripted expert for task='transport'"):
        make_expert("transport", np.random.default_rng(0))
    with pytest.raises(ValueError, match="noise_std"):
        make_expert("lift", np.random.default_rng(0), noise_std=-0.1)


def test_same_seed_same_actions_and_noise_varies_them():
    env = RobomimicEnv(task="lift")
    runs = []
    for noise_seed in (0, 0, 1):
        expert = make_expert("lift", np.random.default_rng(noise_seed), noise_std=0.1)
        expert.reset()
        env.reset(seed=5)
        actions = []
        for _ in range(4):
            actions.append(expert.act(env))
            env.step(actions[-1])
        runs.append(np.stack(actions))  # [4, 7]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])
    assert np.all(np.abs(runs[0]) <= 1.0)
    env.close()


def test_lift_expert_succeeds_on_fixed_seed():
    env = RobomimicEnv(task="lift")
    success, steps = run_episode(env, "lift", seed=0)
    assert success and steps < 120
    env.close()


def test_can_expert_succeeds_on_fixed_seed():
    env = RobomimicEnv(task="can")
    success, steps = run_episode(env, "can", seed=0)
    assert success and steps < 300
    env.close()


@pytest.mark.parametrize("nut_yaw", np.linspace(-np.pi, np.pi, 25))
def test_square_goal_yaw_matches_the_peg_and_keeps_the_handle_near(nut_yaw):
    """The nut is placed at a yaw the square peg accepts (a multiple of 90 degrees), never with its handle
    pointing away from the robot (+x: out of reach), and turned by at most 135 degrees."""
    goal = SquareExpert(np.random.default_rng(0)).goal_yaw(nut_yaw)
    assert goal / (np.pi / 2) == pytest.approx(round(goal / (np.pi / 2)), abs=1e-9)
    assert np.cos(goal) < 0.5  # handle direction (cos, sin): not along +x
    assert abs(goal - nut_yaw) <= 3 * np.pi / 4 + 1e-9


def test_square_expert_approaches_the_handle_with_fingers_across_it():
    env = RobomimicEnv(task="square")
    expert = make_expert("square", np.random.default_rng(3), noise_std=0.1)
    expert.reset()
    env.reset(seed=3)
    handle = env.sim_env.sim.data.site_xpos[env.sim_env.object_site_ids[0]]
    grasp = expert.object_pos(env)  # on the handle's axis, beyond its site (away from the ring)
    outward = (grasp - handle)[:2] / np.linalg.norm((grasp - handle)[:2])
    yaw = expert.nut_yaw(env)
    np.testing.assert_allclose(outward, [np.cos(yaw), np.sin(yaw)], atol=1e-9)
    start = np.linalg.norm(grasp[:2] - env.current_pose_action(0.0)[:2])
    for _ in range(12):
        action = expert.act(env)
        assert action.shape == (7,) and np.all(np.abs(action) <= 1.0) and action[6] == -1.0  # open
        env.step(action)
    assert expert.phase.name in ("approach", "descend")
    assert np.linalg.norm(grasp[:2] - env.current_pose_action(0.0)[:2]) < start - 0.05
    finger_vs_handle = finger_yaw(env.arm_controller.ref_ori_mat) - yaw  # fingers close across the handle
    assert abs(np.sin(finger_vs_handle)) > 0.9
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["lift", "can", "square"])
def test_experts_succeed_on_ten_seeds(task):
    env = RobomimicEnv(task=task)
    results = [run_episode(env, task, seed, noise_std=0.15)[0] for seed in range(20000, 20010)]
    assert sum(results) >= 9
    env.close()


@pytest.mark.slow
def test_tool_hang_expert_succeeds_on_ten_seeds():
    env = RobomimicEnv(task="tool_hang")
    results = [run_episode(env, "tool_hang", seed, noise_std=0.1)[0] for seed in range(20000, 20010)]
    assert sum(results) >= 8
    env.close()


def test_tool_hang_expert_starts_toward_the_frame_grip():
    env = RobomimicEnv(task="tool_hang")
    expert = make_expert("tool_hang", np.random.default_rng(0))
    expert.reset()
    env.reset(seed=0)
    start = np.linalg.norm(expert.geom(env, "frame_grip_frame")[:2] - env.current_pose_action(0.0)[:2])
    for _ in range(15):
        action = expert.act(env)
        assert action.shape == (7,) and np.all(np.abs(action) <= 1.0) and action[6] == -1.0  # open
        env.step(action)
    end = np.linalg.norm(expert.geom(env, "frame_grip_frame")[:2] - env.current_pose_action(0.0)[:2])
    assert expert.phase.name.startswith("frame_") and end < start - 0.03
    env.close()


def test_tool_hang_quiet_phases_draw_no_noise():
    """In the insertion phases a noisy ToolHang expert acts exactly as a noise-free one and leaves its noise
    stream untouched; elsewhere the noise is there."""
    env = RobomimicEnv(task="tool_hang")
    env.reset(seed=3)
    target, rot = env.current_pose_action(0.0)[:3] + [0.02, 0.0, -0.01], down_orientation(0.3)
    actions = {}
    for phase in ("frame_insert", "tool_lower", "frame_approach"):
        for noise_std in (0.0, 0.1):
            expert = ToolHangExpert(np.random.default_rng(7), noise_std)
            expert.reset()
            expert.goto(phase)
            actions[phase, noise_std] = expert.pose_action(env, target, rot, 1.0)
            if phase in ToolHangExpert.QUIET_PHASES:  # the stream is where a fresh one after reset() is
                fresh = np.random.default_rng(7)
                fresh.uniform(size=2)  # reset()'s two parameters
                assert expert.rng.normal() == fresh.normal()
    assert {"frame_insert", "tool_lower"} <= ToolHangExpert.QUIET_PHASES
    np.testing.assert_array_equal(actions["frame_insert", 0.0], actions["frame_insert", 0.1])
    np.testing.assert_array_equal(actions["tool_lower", 0.0], actions["tool_lower", 0.1])
    assert np.abs(actions["frame_approach", 0.1] - actions["frame_approach", 0.0])[:6].max() > 1e-3
    env.close()


@pytest.mark.parametrize("tool_yaw", [-2.0, -0.3, 1.1, 2.9])
@pytest.mark.parametrize("hook_yaw", [-np.pi / 2, 0.4])
def test_tool_hang_over_hook_pose_keeps_the_hand_pointing_down(tool_yaw, hook_yaw):
    """The wrench, grasped from above while flat, only turns about the vertical toward the pose it is lowered
    over the hook in: every steering step keeps the hand pointing down (the old upright pose put the hand
    horizontal and the Panda's joint 5 at its limit), and the steps converge to the handle along the hook."""
    expert = ToolHangExpert(np.random.default_rng(0))
    inward = np.array([np.cos(hook_yaw), np.sin(hook_yaw), 0.0])
    handle = np.array([np.cos(tool_yaw), np.sin(tool_yaw), 0.0])
    tool = np.stack([handle, [0.0, 0.0, 1.0], np.cross(handle, [0.0, 0.0, 1.0])], axis=1)  # flat, hole up
    hand = down_orientation(tool_yaw + np.pi / 2)  # fingers closing across the grip
    grasp = hand.T @ tool  # the wrench in the hand's frame: fixed while held
    wanted = ToolHangExpert.over_hook_axes(inward, tool)
    np.testing.assert_allclose(wanted[:, 0], inward, atol=1e-12)
    np.testing.assert_allclose(wanted[:, 1], [0, 0, 1], atol=1e-12)
    assert np.linalg.det(wanted) == pytest.approx(1.0)
    for _ in range(20):
        hand, angle = expert.steer(tool, wanted, hand)
        tool = hand @ grasp
        np.testing.assert_allclose(hand[:, 2], [0, 0, -1], atol=1e-9)
    assert angle < 1e-6
    np.testing.assert_allclose(tool, wanted, atol=1e-9)

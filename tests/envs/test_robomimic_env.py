"""RobomimicEnv over robosuite: observations, seeding, reset-to-state replay, absolute actions, rendering."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("robosuite")

from envs.robomimic.env import (  # noqa: E402
    TASKS,
    RenderingUnavailable,
    RobomimicEnv,
    RobomimicEnvConfig,
    config_from_env_args,
    ensure_gl_backend,
)

OBJECT_DIMS = {"lift": 10, "can": 14, "square": 14, "tool_hang": 44}


@pytest.fixture(scope="module")
def lift():
    env = RobomimicEnv(task="lift", terminate_on_success=False)
    yield env
    env.close()


@pytest.mark.parametrize("task", sorted(TASKS))
def test_low_dim_obs_keys_dims_and_step(task):
    env = RobomimicEnv(task=task)
    obs, info = env.reset(seed=0)
    expected = {
        "object": (OBJECT_DIMS[task],),
        "robot0_eef_pos": (3,),
        "robot0_eef_quat": (4,),
        "robot0_gripper_qpos": (2,),
    }
    assert {k: v.shape for k, v in obs.items()} == expected
    assert all(v.dtype == np.float32 for v in obs.values())
    assert obs in env.observation_space and env.action_space.shape == (7,)
    assert info["is_success"] is False
    assert abs(np.linalg.norm(obs["robot0_eef_quat"]) - 1) < 1e-5  # a unit quaternion
    obs2, reward, terminated, truncated, info = env.step(np.array([1.0, 0, 0, 0, 0, 0, -1]))
    assert (
        obs2["robot0_eef_pos"][0] > obs["robot0_eef_pos"][0] + 0.002
    )  # +x delta moves the gripper along world x
    assert (reward, terminated, truncated, info["is_success"]) == (0.0, False, False, False)
    assert env.config.max_steps == TASKS[task].horizon
    env.close()


def test_seed_reproduces_and_varies_initial_state(lift):
    lift.reset(seed=1)
    first, xml = lift.get_state(), lift.model_xml()
    lift.reset(seed=2)
    assert not np.allclose(first, lift.get_state())
    lift.reset(seed=1)
    np.testing.assert_array_equal(first, lift.get_state())
    assert lift.model_xml() == xml  # same cube size too


def test_reset_to_state_replays_episode_exactly(lift):
    obs, _ = lift.reset(seed=3)
    states, xml = [lift.get_state()], lift.model_xml()
    actions = np.random.default_rng(0).uniform(-1, 1, size=(12, 7))
    recorded = [obs]
    for action in actions:
        recorded.append(lift.step(action)[0])
        states.append(lift.get_state())
    lift.reset(seed=4)  # another scene (other cube size): the model file must be reloaded
    obs, _ = lift.reset(options={"reset_to_state": states[0], "model_file": xml})
    replayed = [obs] + [lift.step(action)[0] for action in actions]
    for old, new in zip(recorded, replayed, strict=True):
        for key in old:
            np.testing.assert_allclose(new[key], old[key], atol=1e-6, err_msg=key)
    obs, _ = lift.reset(options={"reset_to_state": states[7]})  # any stored state gives its observation
    for key in obs:
        np.testing.assert_allclose(obs[key], recorded[7][key], atol=1e-6, err_msg=key)


def test_reset_to_state_rejects_wrong_size(lift):
    lift.reset(seed=0)
    with pytest.raises(ValueError, match="state dim"):
        lift.reset(options={"reset_to_state": np.zeros(5)})


def test_absolute_actions_hold_and_reach_targets():
    env = RobomimicEnv(task="lift", action_mode="absolute", terminate_on_success=False)
    assert env.env_args["env_kwargs"]["controller_configs"]["body_parts"]["right"]["input_type"] == "absolute"
    env.reset(seed=0)
    hold = env.current_pose_action(gripper=-1.0)
    for _ in range(10):
        obs, *_ = env.step(hold)
    assert np.abs(obs["robot0_eef_pos"] - hold[:3]).max() < 1e-3  # a held target stays still
    target = hold.copy()
    target[:3] += [0.04, -0.04, 0.04]
    for _ in range(40):
        obs, *_ = env.step(target)
    assert np.abs(obs["robot0_eef_pos"] - target[:3]).max() < 5e-3
    env.close()


def test_delta_controller_goal_as_absolute_action(lift):
    lift.reset(seed=0)
    lift.step(np.array([0.5, 0, 0, 0, 0, 0, -1]))
    absolute = lift.absolute_action(gripper=-1.0)
    pose = lift.current_pose_action(gripper=-1.0)
    assert absolute.shape == (7,)
    assert 0.0 < absolute[0] - pose[0] < 0.03  # the goal leads the gripper along +x


def test_horizon_truncates_and_success_terminates():
    env = RobomimicEnv(task="lift", horizon=3)
    env.reset(seed=0)
    flags = [env.step(np.zeros(7))[3] for _ in range(3)]
    assert flags == [False, False, True]
    env.close()


def test_config_validation_and_env_args_round_trip():
    with pytest.raises(ValueError, match="task='transport'"):
        RobomimicEnvConfig(task="transport")
    with pytest.raises(ValueError, match="action_mode"):
        RobomimicEnvConfig(action_mode="relative")
    from envs.robomimic.env import make_env_args

    args = make_env_args(RobomimicEnvConfig(task="can", action_mode="absolute"))
    assert args["env_name"] == "PickPlaceCan" and args["type"] == 1
    config = config_from_env_args(args)
    assert (config.task, config.action_mode) == ("can", "absolute")
    real = {
        "env_name": "Lift",
        "type": 1,
        "env_kwargs": {"controller_configs": {"type": "OSC_POSE", "control_delta": False}},
    }
    assert config_from_env_args(real).action_mode == "absolute"  # robomimic's old absolute flag is honoured


def test_gl_backend_found_or_reason_given():
    try:
        backend = ensure_gl_backend()
    except RenderingUnavailable as error:
        assert "libegl" in str(error) or "MUJOCO_GL" in str(error)  # says what to install or set
        pytest.skip(f"image observations unavailable here: {error}")
    assert backend in ("egl", "osmesa", "glx")


@pytest.mark.slow  # EGL on llvmpipe: ~10 s to build the render context on a shared 2-core CPU
def test_image_observations_or_skip():
    try:
        ensure_gl_backend()
    except RenderingUnavailable as error:
        pytest.skip(f"image observations unavailable here: {error}")
    env = RobomimicEnv(task="lift", obs_type="image")
    obs, _ = env.reset(seed=0)
    for key in ("agentview_image", "robot0_eye_in_hand_image"):
        assert obs[key].shape == (84, 84, 3) and obs[key].dtype == np.uint8
        assert obs[key].std() > 1.0  # not a blank frame
    env.close()


def test_triton_loads_after_a_gl_context(tmp_path):
    """The order that segfaulted (exit 139): a MuJoCo GL context first, then triton (torchvision's ops pull it
    in). A real process: ensure_gl_backend must have loaded triton before Mesa's LLVM."""
    pytest.importorskip("triton")
    import subprocess
    import sys

    script = ("from envs.robomimic.env import ensure_gl_backend\n"
              "ensure_gl_backend()\n"
              "import mujoco\n"
              "context = mujoco.GLContext(16, 16)\n"
              "context.make_current()\n"
              "import torch._dynamo  # imports triton\n"
              "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    if "RenderingUnavailable" in result.stderr:
        pytest.skip("no headless GL here")
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-500:]

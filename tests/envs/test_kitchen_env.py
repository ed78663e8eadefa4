import gymnasium
import numpy as np
import pytest

import envs.kitchen  # noqa: F401  (registers envs/Kitchen-v0)
from envs.kitchen.env import TASKS, FrankaKitchenEnv, completed_tasks, p_metrics

# qpos indices of each task's joints and a value past gymnasium-robotics' 0.3 threshold
DONE = {"microwave": (22, -0.7), "slide cabinet": (19, 0.3), "light switch": (17, -0.65),
        "bottom burner": (11, -0.8)}


def _start_qpos(env, **tasks):
    env.reset(seed=0)
    qpos = env.data.qpos.copy()
    for task, value in tasks.items():
        index, _ = DONE[task.replace("_", " ")]
        qpos[index] = value
    return qpos


def test_reset_is_deterministic_under_a_seed_and_so_are_steps():
    def trajectory(seed):
        env = FrankaKitchenEnv()
        obs, _ = env.reset(seed=seed)
        rows = [np.concatenate(list(obs.values()))]
        for step in range(8):
            obs, *_ = env.step(np.full(9, 0.3 if step % 2 else -0.3))
            rows.append(np.concatenate(list(obs.values())))
        return np.array(rows)

    first, second, other = trajectory(7), trajectory(7), trajectory(8)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first[0], other[0])  # the simulator's observation noise follows the seed
    np.testing.assert_allclose(first[0], other[0], atol=0.02)  # ... around the same fixed start


def test_registered_env_and_observation_layout():
    env = gymnasium.make("envs/Kitchen-v0", disable_env_checker=True)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert {k: v.shape for k, v in obs.items()} == {"robot_qpos": (9,), "object_qpos": (21,)}
    np.testing.assert_allclose(obs["object_qpos"], info["qpos"][9:], atol=0.01)
    assert info["completed_tasks"] == [] and info["p1"] == 0.0 and not info["is_success"]
    assert env.action_space.shape == (9,)


def test_a_task_counts_once_its_joint_is_past_the_threshold():
    env = FrankaKitchenEnv()
    just_short = _start_qpos(env, microwave=-0.44)  # |-0.44 - (-0.75)| = 0.31 > 0.3
    assert completed_tasks(just_short) == []
    _, info = env.reset(seed=0, options={"qpos": _start_qpos(env, microwave=-0.7)})
    assert info["completed_tasks"] == ["microwave"] and (info["p1"], info["p2"]) == (1.0, 0.0)
    for _ in range(3):  # still done, and counted once
        _, reward, terminated, _, info = env.step(np.zeros(9))
    assert info["completed_tasks"] == ["microwave"] and info["n_completed"] == 1
    assert reward == 0.25 and not terminated


def test_p_metrics_count_distinct_tasks_and_four_end_the_episode():
    assert p_metrics(3) == {"p1": 1.0, "p2": 1.0, "p3": 1.0, "p4": 0.0}
    env = FrankaKitchenEnv()
    qpos = _start_qpos(env, microwave=-0.7, slide_cabinet=0.3, light_switch=-0.65, bottom_burner=-0.8)
    _, info = env.reset(seed=0, options={"qpos": qpos})
    assert sorted(info["completed_tasks"]) == sorted(DONE) and info["p4"] == 1.0
    _, reward, terminated, truncated, _ = env.step(np.zeros(9))
    assert reward == 1.0 and terminated and not truncated
    assert set(TASKS) >= set(DONE)


def test_truncation_and_action_errors():
    env = FrankaKitchenEnv(max_episode_steps=2)
    env.reset(seed=0)
    assert not env.step(np.zeros(9))[3] and env.step(np.zeros(9))[3]
    with pytest.raises(ValueError, match="9 finite numbers"):
        env.step(np.zeros(7))
    with pytest.raises(ValueError, match="tasks_to_finish"):
        FrankaKitchenEnv(tasks_to_finish=0)
    with pytest.raises(ValueError, match=r"options\['qpos'\]"):
        env.reset(options={"qpos": np.zeros(3)})

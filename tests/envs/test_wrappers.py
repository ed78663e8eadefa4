"""MultiStepWrapper (stacking, chunk execution, reward/info aggregation, truncation) and VideoRecorder."""

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
from gymnasium import spaces

from envs.wrappers import MultiStepWrapper, VideoRecorder


class CountingEnv(gym.Env):
    """obs t (the step count); reward = action[0]; success when action[0] >= 10 (terminates)."""

    metadata = {"render_modes": ["rgb_array"]}
    render_mode = "rgb_array"

    def __init__(self):
        self.observation_space = spaces.Dict({"t": spaces.Box(0, 1000, shape=(1,), dtype=np.float32)})
        self.action_space = spaces.Box(-100, 100, shape=(1,), dtype=np.float32)
        self.t = 0
        self.actions = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return {"t": np.array([0.0], dtype=np.float32)}, {"is_success": False}

    def step(self, action):
        self.t += 1
        self.actions.append(float(action[0]))
        done = action[0] >= 10
        obs = {"t": np.array([self.t], dtype=np.float32)}
        info = {"is_success": bool(done), "coverage": float(action[0])}
        return obs, float(action[0]), bool(done), False, info

    def render(self):
        return np.full((4, 4, 3), self.t, dtype=np.uint8)


def test_reset_repeats_first_observation_and_step_stacks_latest():
    env = MultiStepWrapper(CountingEnv(), obs_horizon=3, action_horizon=4)
    obs, _ = env.reset(seed=0)
    assert obs["t"].shape == (3, 1) and obs["t"].ravel().tolist() == [0, 0, 0]
    obs, *_ = env.step(np.ones((4, 1)))
    assert obs["t"].ravel().tolist() == [2, 3, 4]
    assert env.observation_space["t"].shape == (3, 1) and env.action_space.shape == (4, 1)


def test_reward_is_max_and_termination_stops_the_chunk():
    inner = CountingEnv()
    env = MultiStepWrapper(inner, obs_horizon=2, action_horizon=4)
    env.reset()
    _, reward, terminated, truncated, info = env.step(np.array([[1.0], [3.0], [2.0], [0.0]]))
    assert reward == 3.0 and not terminated and info["coverage"] == 3.0  # max, not the last value 0
    _, reward, terminated, _, info = env.step(np.array([[2.0], [12.0], [5.0], [5.0]]))
    assert terminated and reward == 12.0 and info["is_success"]
    assert inner.actions == [1, 3, 2, 0, 2, 12]  # the two actions after success were not executed
    assert info["episode_steps"] == 6


def test_sum_reduction_and_max_episode_steps_truncates_mid_chunk():
    inner = CountingEnv()
    env = MultiStepWrapper(inner, obs_horizon=1, action_horizon=4, max_episode_steps=6,
                           reward_reduction="sum")
    env.reset()
    env.step(np.ones((4, 1)))
    _, reward, terminated, truncated, info = env.step(np.ones((4, 1)))
    assert truncated and not terminated and reward == 2.0 and info["episode_steps"] == 6
    with pytest.raises(ValueError, match="action_horizon=4"):
        env.step(np.ones((3, 1)))


def test_works_inside_a_vector_env():
    vec = gym.vector.SyncVectorEnv([lambda: MultiStepWrapper(CountingEnv(), 2, 3) for _ in range(2)])
    obs, _ = vec.reset(seed=[0, 1])
    assert obs["t"].shape == (2, 2, 1)
    obs, reward, *_ = vec.step(np.stack([np.ones((3, 1)), 2 * np.ones((3, 1))]))
    assert reward.tolist() == [1.0, 2.0] and obs["t"][:, :, 0].tolist() == [[2, 3], [2, 3]]
    vec.close()


def test_video_recorder_films_every_simulation_step(tmp_path):
    path = tmp_path / "ep.gif"
    env = MultiStepWrapper(VideoRecorder(CountingEnv()), obs_horizon=2, action_horizon=3)
    env.set_wrapper_attr("video_path", str(path))
    env.reset()
    env.step(np.ones((3, 1)))
    assert not path.exists()  # written when the episode ends
    env.step(np.array([[1.0], [20.0], [1.0]]))
    frames = imageio.mimread(path)
    assert [int(f[0, 0, 0]) for f in frames] == [0, 1, 2, 3, 4, 5]  # reset + 5 executed steps
    env.reset()
    env.step(np.full((3, 1), 20.0))  # recording stopped after the filmed episode
    assert len(imageio.mimread(path)) == 6

"""Gymnasium wrappers shared by every task: multi-step execution, video recording, holding ended episodes.

`MultiStepWrapper` turns a single-step env into Diffusion Policy's policy-rate env: the observation is
the last `obs_horizon` observations stacked on a new leading axis (the first one repeated after a reset),
an action is a chunk of `action_horizon` actions executed one after another, and the reward of the chunk
is the max (or sum) of the rewards of the executed steps. `VideoRecorder` sits *below* it so that every
simulation step is filmed.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

REWARD_REDUCTIONS = ("max", "sum")


def stack_space(space: spaces.Space, n: int) -> spaces.Space:
    """The space of `n` stacked copies of `space` (Box or Dict of Boxes), stacked on a new leading axis."""
    if isinstance(space, spaces.Dict):
        return spaces.Dict({key: stack_space(sub, n) for key, sub in space.spaces.items()})
    if isinstance(space, spaces.Box):
        low = np.repeat(space.low[None], n, axis=0)
        high = np.repeat(space.high[None], n, axis=0)
        return spaces.Box(low=low, high=high, dtype=space.dtype)
    raise TypeError(f"stack_space supports Box and Dict spaces, got {type(space).__name__}")


class MultiStepWrapper(gym.Wrapper):
    """obs_horizon stacked observations in, action_horizon actions out (Diffusion Policy's multi-step env).

    Observations: `{key: [obs_horizon, ...]}` (or `[obs_horizon, ...]` for a Box env). Actions:
    `[action_horizon, action_dim]`; a chunk stops early when the episode terminates or reaches
    `max_episode_steps` simulation steps
    (then `truncated=True`). `info` is the info of the last executed step, except the keys in `max_info_keys`,
    which hold their max over the executed steps (so a success in the middle of a chunk is not lost), plus
    `episode_steps`, the simulation steps since the reset.
    """

    def __init__(self, env: gym.Env, obs_horizon: int, action_horizon: int,
                 max_episode_steps: int | None = None, reward_reduction: str = "max",
                 max_info_keys: tuple[str, ...] = ("coverage", "is_success")):
        super().__init__(env)
        if obs_horizon < 1 or action_horizon < 1:
            raise ValueError(f"obs_horizon and action_horizon must be >= 1, got {obs_horizon} and "
                             f"{action_horizon}")
        if reward_reduction not in REWARD_REDUCTIONS:
            raise ValueError(f"reward_reduction must be one of {REWARD_REDUCTIONS}, got {reward_reduction!r}")
        self.obs_horizon = obs_horizon
        self.action_horizon = action_horizon
        self.max_episode_steps = max_episode_steps
        self.reward_reduction = reward_reduction
        self.max_info_keys = tuple(max_info_keys)
        self.observation_space = stack_space(env.observation_space, obs_horizon)
        self.action_space = stack_space(env.action_space, action_horizon)
        self._obs: collections.deque = collections.deque(maxlen=obs_horizon)
        self.n_steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs.clear()
        self._obs.extend([obs] * self.obs_horizon)
        self.n_steps = 0
        return self._stacked(), info

    def step(self, action: np.ndarray):
        action = np.asarray(action)
        if action.shape[0] != self.action_horizon:
            raise ValueError(f"MultiStepWrapper expects actions [action_horizon={self.action_horizon}, ...], "
                             f"got shape {action.shape}; slice the prediction to action_horizon steps")
        rewards, maxima = [], {}
        terminated = truncated = False
        info: dict[str, Any] = {}
        for single_action in action:
            obs, reward, terminated, truncated, info = self.env.step(single_action)
            self._obs.append(obs)
            self.n_steps += 1
            rewards.append(float(reward))
            for key in self.max_info_keys:
                if key in info:
                    maxima[key] = max(maxima.get(key, info[key]), info[key])
            if self.max_episode_steps is not None and self.n_steps >= self.max_episode_steps:
                truncated = True
            if terminated or truncated:
                break
        info = {**info, **maxima, "episode_steps": self.n_steps}
        reward = max(rewards) if self.reward_reduction == "max" else sum(rewards)
        return self._stacked(), reward, terminated, truncated, info

    def _stacked(self):
        first = self._obs[0]
        if isinstance(first, dict):
            return {key: np.stack([obs[key] for obs in self._obs]) for key in first}
        return np.stack(list(self._obs))


class VideoRecorder(gym.Wrapper):
    """Films an episode: after each reset and step, `env.render()` (render_mode "rgb_array") is a frame.

    Recording is on while `video_path` is set (set it per sub-env with `vector_env.set_attr("video_path",
    [...])` before a reset). The video is written when the episode terminates or is truncated, after which
    recording
    stops; `write_video()` writes what was filmed so far (gif via imageio, or mp4 when the path ends in .mp4
    and an ffmpeg plugin is installed) and returns the path written, or None.
    """

    def __init__(self, env: gym.Env, fps: int = 10):
        super().__init__(env)
        self.fps = fps
        self.video_path: str | None = None
        self._frames: list[np.ndarray] = []

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        result = self.env.reset(seed=seed, options=options)
        self._frames = []
        self._film()
        return result

    def step(self, action):
        result = self.env.step(action)
        self._film()
        if result[2] or result[3]:  # episode over: write now, before a vector env's autoreset clears it
            self.write_video()
            self.video_path = None
        return result

    def _film(self) -> None:
        if self.video_path is not None:
            self._frames.append(np.asarray(self.env.render()))

    def write_video(self) -> str | None:
        if self.video_path is None or not self._frames:
            return None
        import imageio.v2 as imageio  # only needed when videos are written

        path = Path(self.video_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".gif":
            imageio.mimsave(path, self._frames, duration=1000.0 / self.fps, loop=0)
        else:
            imageio.mimsave(path, self._frames, fps=self.fps)
        self._frames = []
        return str(path)


class HoldAfterEnd(gym.Wrapper):
    """Stops simulating a sub-env of an evaluation batch once its episode has ended.

    A batch of episodes runs until its slowest one ends. Meanwhile a vector env (NEXT_STEP autoreset) would
    reset each finished sub-env without a seed and simulate new episodes that nobody scores: on robomimic, one
    400-step failure kept 24 finished envs simulating too. Wrapped outermost, this env answers that unseeded
    reset and every later step with the episode's last observation and info (reward 0, not terminated), at no
    simulation cost. A seeded reset, which is how the runner starts each batch, starts a real episode.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._held: tuple[Any, dict] | None = None  # (last obs, last info) once the episode has ended

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if self._held is not None and seed is None and options is None:
            return self._held
        self._held = None
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        if self._held is not None:
            obs, info = self._held
            return obs, 0.0, False, False, info
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            self._held = (obs, info)
        return obs, reward, terminated, truncated, info

"""Small stand-ins for the trainer/runner/checkpoint tests: a reach env, a linear policy, random windows.

FakeReach: the agent moves halfway to its commanded absolute target each step; reward = coverage =
clip(1 - distance to GOAL / 0.5, 0, 1); success (and termination) when the distance is below 0.05.
TinyPolicy predicts chunks `linear(obs) + noise_std * noise`, noise from the given generator, so resume
tests fail if the trainer's generator state is not restored.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from torch import nn

FAKE_ENV_ID = "tests/FakeReach-v0"
GOAL = np.array([0.5, -0.25], dtype=np.float32)


class FakeReachEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = "rgb_array"):
        self.render_mode = render_mode
        self.observation_space = spaces.Dict({"pos": spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float32)})
        self.action_space = spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float32)
        self.pos = np.zeros(2, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos = np.random.RandomState(seed).uniform(-1, 1, size=2).astype(np.float32)
        return {"pos": self.pos.copy()}, self._info()

    def step(self, action):
        self.pos = (self.pos + 0.5 * (np.asarray(action, dtype=np.float32) - self.pos)).astype(np.float32)
        info = self._info()
        return {"pos": self.pos.copy()}, info["coverage"], bool(info["is_success"]), False, info

    def _info(self) -> dict:
        distance = float(np.linalg.norm(self.pos - GOAL))
        return {"coverage": float(np.clip(1 - distance / 0.5, 0, 1)), "is_success": distance < 0.05}

    def render(self):
        frame = np.zeros((8, 8, 3), dtype=np.uint8)
        x, y = np.clip(((self.pos + 2) * 2).astype(int), 0, 7)
        frame[y, x] = 255
        return frame


if FAKE_ENV_ID not in gym.registry:
    gym.register(id=FAKE_ENV_ID, entry_point=FakeReachEnv)


@dataclass
class TinyConfig:
    obs_horizon: int = 2
    action_horizon: int = 4
    prediction_horizon: int = 6
    noise_std: float = 0.1


class TinyPolicy(nn.Module):
    """Linear map from stacked `pos` observations to an action chunk, plus generator noise."""

    name = "tiny"

    def __init__(self, config: TinyConfig | None = None, shape_meta: dict | None = None):
        super().__init__()
        self.config = config or TinyConfig()
        self.linear = nn.Linear(self.config.obs_horizon * 2, self.config.prediction_horizon * 2)
        self.resets = 0

    def _chunk(self, obs: dict, generator: torch.Generator | None) -> torch.Tensor:
        pos = torch.as_tensor(obs["pos"], dtype=torch.float32)  # [B, obs_horizon, 2]
        mean = self.linear(pos.flatten(1)).view(len(pos), self.config.prediction_horizon, 2)
        noise = torch.randn(mean.shape, generator=generator)
        return mean + self.config.noise_std * noise  # [B, prediction_horizon, 2]

    def compute_loss(self, batch: dict, generator: torch.Generator | None = None):
        error = self._chunk(batch["obs"], generator) - batch["action"]
        loss = error.pow(2).mean()
        return loss, {"abs_error": error.abs().mean().detach()}

    def predict_action(self, obs: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        return self._chunk(obs, generator)

    def reset(self) -> None:
        self.resets += 1


def build_tiny(name: str, options: dict, shape_meta: dict) -> TinyPolicy:
    assert name == "tiny", name
    return TinyPolicy(TinyConfig(**options), shape_meta)


TINY_SHAPE_META = {"obs": {"pos": {"shape": (2,), "type": "low_dim"}}, "action": {"shape": (2,)}}


class ReachWindows(torch.utils.data.Dataset):
    """Random `pos` windows whose demonstrated chunk moves straight to GOAL (what the expert would do)."""

    def __init__(self, n: int = 64, config: TinyConfig | None = None, seed: int = 0):
        config = config or TinyConfig()
        rng = np.random.default_rng(seed)
        self.obs = rng.uniform(-1, 1, size=(n, config.obs_horizon, 2)).astype(np.float32)
        self.action = np.broadcast_to(GOAL, (n, config.prediction_horizon, 2)).astype(np.float32).copy()
        self.action += rng.normal(0, 0.01, size=self.action.shape).astype(np.float32)

    def __len__(self) -> int:
        return len(self.obs)

    def __getitem__(self, index: int) -> dict:
        return {"obs": {"pos": self.obs[index]}, "action": self.action[index]}


# ---- tiny configs for the drifting-train / drifting-eval pipeline tests -------------------------------
TINY_RUNNER = ["task.runner.n_seeds=2", "task.runner.max_steps=16", "task.runner.n_envs=2",
               "task.runner.n_videos=1", "task.runner.env_kwargs.video_size=32"]


def compose_config(name: str, overrides: list[str]) -> dict:
    """configs/<name>.yaml composed with overrides, as a plain dict (what drifting-train passes on)."""
    with initialize_config_module("configs", version_base=None):
        return OmegaConf.to_container(compose(name, overrides=overrides), resolve=True)


def write_tiny_pusht_store(path):
    """A 4-episode Push-T zarr of random states and actions (for pipeline tests, not learning)."""
    from drifting_policy.data import ReplayBuffer

    buffer = ReplayBuffer.create(path)
    rng = np.random.default_rng(0)
    for _ in range(4):
        state = rng.uniform(100, 400, (30, 5)).astype(np.float32)
        buffer.add_episode({"state": state, "keypoint": rng.uniform(0, 512, (30, 9, 2)).astype(np.float32),
                            "action": state[:, :2] + rng.normal(0, 5, (30, 2)).astype(np.float32)})
    return path


def train_overrides(store, run_dir, policy):
    """Overrides for a 2-step drifting-train on the tiny store with a tiny MLP and a 2-seed evaluation."""
    return [f"policy={policy}", f"task.dataset.zarr_path={store}", f"run_dir={run_dir}",
            "task.dataset.val_ratio=0.25",
            "train.max_steps=2", "train.batch_size=8", "train.log_every=1", "train.warmup_steps=1",
            "train.eval_every=null", "train.progress=false", "policy.mlp_width=32", "policy.mlp_depth=1",
            *TINY_RUNNER]

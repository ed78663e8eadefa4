"""Closed-loop evaluation runner (Diffusion Policy's protocol) for any gymnasium task of the project.

`EnvRunner(RunnerConfig(...)).run(policy) -> {"eval/mean_score": ..., ...}` rolls the policy out on a
fixed list of env seeds in a gymnasium vector env of `MultiStepWrapper`-ed envs: `obs_horizon` stacked
observations in, the chunk `prediction[:, obs_horizon - 1 : obs_horizon - 1 + action_horizon]` executed,
episode score = max reward over the episode; each `info_metrics` key (e.g. block pushing's p1, p2) is
reported as the mean over episodes of its max over the episode; each `info_records` key (e.g. block
pushing's first_block) is kept as its value at each episode's last step. `run_episodes` returns the per-seed
details (`EvalResult`) for JSON summaries.

Deterministic for a given config: env seeds are explicit and the policy samples from a `torch.Generator`
seeded with `sampling_seed` (results do depend on `n_envs`, which fixes how episodes are batched).
"""

from __future__ import annotations

import dataclasses
import importlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from drifting_policy.collect.settings import TEST_SEED_START
from drifting_policy.common.stats import bootstrap_mean_ci, wilson_interval
from envs.wrappers import HoldAfterEnd, MultiStepWrapper, VideoRecorder

VECTOR_MODES = ("sync", "async")


@dataclass
class RunnerConfig:
    """What to roll out and how. Seeds are `seed_start, seed_start + 1, ...` (`n_seeds` of them)."""

    env_id: str = "envs/PushT-v0"
    env_module: str | None = "envs.pusht"  # imported first: registers env_id
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    seed_start: int = TEST_SEED_START
    n_seeds: int = 50
    max_steps: int = 300
    obs_horizon: int = 2
    action_horizon: int = 8
    n_envs: int = 10
    vector_mode: str = "sync"
    n_videos: int = 0  # the first n_videos episodes are filmed when a video_dir is given
    video_fps: int = 10
    video_format: str = "gif"
    success_key: str = "is_success"
    coverage_key: str | None = "coverage"
    # info keys whose max over each episode is averaged over episodes and reported as <prefix><key>
    info_metrics: tuple[str, ...] = ()
    # info keys whose value at each episode's last step is kept per episode (EvalResult.info_records), e.g.
    # the order a multi-stage task was done in (evaluation/order_modes.py)
    info_records: tuple[str, ...] = ()
    # "module:function" mapping executed policy actions [..., action_dim] to env actions [..., env_dim]
    # (e.g. robomimic's 10-D absolute actions with a 6-D rotation -> the env's 7-D axis-angle OSC_POSE)
    action_transform: str | None = None
    sampling_seed: int = 0
    prefix: str = "eval/"
    n_bootstrap: int = 2000

    def __post_init__(self):
        for name in ("n_seeds", "max_steps", "obs_horizon", "action_horizon", "n_envs"):
            if getattr(self, name) < 1:
                raise ValueError(f"RunnerConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.vector_mode not in VECTOR_MODES:
            raise ValueError(f"RunnerConfig.vector_mode must be one of {VECTOR_MODES}, got "
                             f"{self.vector_mode!r}")
        if self.video_format not in ("gif", "mp4"):
            raise ValueError(f"RunnerConfig.video_format must be 'gif' or 'mp4', got {self.video_format!r}")
        self.env_kwargs = dict(self.env_kwargs)
        self.info_metrics = tuple(self.info_metrics)
        self.info_records = tuple(self.info_records)
        if self.action_transform is not None and ":" not in self.action_transform:
            raise ValueError(f"RunnerConfig.action_transform must be 'module:function', got "
                             f"{self.action_transform!r}")

    @property
    def seeds(self) -> list[int]:
        return list(range(self.seed_start, self.seed_start + self.n_seeds))


@dataclass
class EvalResult:
    """Per-episode outcomes of one evaluation, in seed order."""

    seeds: list[int]
    scores: list[float]  # max reward over the episode
    successes: list[bool]  # info[success_key] at any step
    max_coverages: list[float] | None
    episode_steps: list[int]
    videos: list[str]
    seconds: float
    policy_ms_per_chunk: float
    info_maxima: dict[str, list[float]] = field(default_factory=dict)  # per info_metrics key, per episode
    info_records: dict[str, list[Any]] = field(default_factory=dict)  # per info_records key, per episode

    def metrics(self, prefix: str = "eval/", n_bootstrap: int = 2000) -> dict[str, float]:
        scores = np.asarray(self.scores, dtype=np.float64)
        low, high = bootstrap_mean_ci(scores, n_bootstrap)
        n_success = int(np.sum(self.successes))
        s_low, s_high = wilson_interval(n_success, len(scores))
        out = {
            "mean_score": float(scores.mean()), "mean_score_ci_low": low, "mean_score_ci_high": high,
            "success_rate": n_success / len(scores), "success_rate_ci_low": s_low,
            "success_rate_ci_high": s_high,
            "mean_episode_steps": float(np.mean(self.episode_steps)), "n_episodes": float(len(scores)),
            "seconds": self.seconds, "policy_ms_per_chunk": self.policy_ms_per_chunk,
        }
        if self.max_coverages is not None:
            out["mean_max_coverage"] = float(np.mean(self.max_coverages))
        for key, maxima in self.info_maxima.items():
            out[key] = float(np.mean(maxima))
        return {prefix + key: float(value) for key, value in out.items()}

    def to_json(self, prefix: str = "eval/", n_bootstrap: int = 2000) -> dict[str, Any]:
        return {"metrics": self.metrics(prefix, n_bootstrap), **dataclasses.asdict(self)}


def _plain(value: Any) -> Any:
    """A vector env's info entry as plain JSON-able Python (numpy arrays and scalars to lists and numbers)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def obs_to_torch(obs: dict[str, np.ndarray] | np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
    """Vector-env observations `{key: [B, obs_horizon, ...]}` as tensors; dtypes kept (images stay uint8)."""
    if not isinstance(obs, dict):
        obs = {"obs": obs}
    return {key: torch.from_numpy(np.ascontiguousarray(value)).to(device) for key, value in obs.items()}


def policy_device(policy: torch.nn.Module) -> torch.device:
    param = next(iter(policy.parameters()), None)
    return param.device if param is not None else torch.device("cpu")


class EnvRunner:
    """Rolls a policy out on the configured seeds; knows nothing about which policy it holds."""

    def __init__(self, config: RunnerConfig):
        self.config = config
        if config.env_module:
            importlib.import_module(config.env_module)
        self.action_transform = None
        if config.action_transform:
            module, name = config.action_transform.split(":")
            self.action_transform = getattr(importlib.import_module(module), name)

    def make_env(self, record: bool) -> gym.Env:
        cfg = self.config
        kwargs = dict(cfg.env_kwargs)
        if record:
            kwargs.setdefault("render_mode", "rgb_array")
        env = gym.make(cfg.env_id, max_episode_steps=cfg.max_steps, disable_env_checker=True, **kwargs)
        if record:
            env = VideoRecorder(env, fps=cfg.video_fps)
        keys = tuple(key for key in (cfg.coverage_key, cfg.success_key, *cfg.info_metrics) if key)
        return MultiStepWrapper(env, cfg.obs_horizon, cfg.action_horizon, max_episode_steps=cfg.max_steps,
                                max_info_keys=keys)

    def _vector_env(self, n_envs: int, record: bool) -> gym.vector.VectorEnv:
        # finished episodes are held, not re-simulated, while the rest of their batch runs on
        fns = [lambda: HoldAfterEnd(self.make_env(record)) for _ in range(n_envs)]
        if self.config.vector_mode == "async":
            return gym.vector.AsyncVectorEnv(fns)
        return gym.vector.SyncVectorEnv(fns)

    def run(self, policy, video_dir: str | Path | None = None) -> dict[str, float]:
        """Flat float metrics with the configured prefix (`eval/mean_score`, `eval/success_rate`, ...)."""
        result = self.run_episodes(policy, video_dir)
        return result.metrics(self.config.prefix, self.config.n_bootstrap)

    def run_episodes(self, policy, video_dir: str | Path | None = None) -> EvalResult:
        cfg = self.config
        self._check_policy(policy)
        seeds = cfg.seeds
        n_envs = min(cfg.n_envs, len(seeds))
        record = video_dir is not None and cfg.n_videos > 0
        generator = torch.Generator(device=policy_device(policy)).manual_seed(cfg.sampling_seed)
        start = time.perf_counter()
        outcomes: list[dict[str, Any]] = []
        timing = [0.0, 0]  # seconds in predict_action, chunks predicted
        was_training = policy.training
        policy.eval()
        try:
            vector_env = self._vector_env(n_envs, record)
        except RuntimeError as error:  # e.g. no headless GL to film with: evaluate anyway, without videos
            if not record:
                raise
            warnings.warn(f"n_videos={cfg.n_videos}: recording no videos, {cfg.env_id} cannot render: "
                          f"{error}", stacklevel=2)
            record = False
            vector_env = self._vector_env(n_envs, record)
        try:
            for first in range(0, len(seeds), n_envs):
                chunk = seeds[first:first + n_envs]
                paths = [self._video_path(video_dir, first + i, seed) if record else None
                         for i, seed in enumerate(chunk)]
                outcomes += self._rollout(vector_env, policy, chunk, paths, generator, timing)[:len(chunk)]
        finally:
            vector_env.close()
            policy.train(was_training)
        return EvalResult(
            seeds=seeds, scores=[o["score"] for o in outcomes], successes=[o["success"] for o in outcomes],
            max_coverages=[o["coverage"] for o in outcomes] if cfg.coverage_key else None,
            episode_steps=[o["steps"] for o in outcomes],
            videos=[o["video"] for o in outcomes if o["video"]], seconds=time.perf_counter() - start,
            policy_ms_per_chunk=1000.0 * timing[0] / max(timing[1], 1),
            info_maxima={key: [o["info"][key] for o in outcomes] for key in cfg.info_metrics},
            info_records={key: [o["records"][key] for o in outcomes] for key in cfg.info_records})

    def _video_path(self, video_dir, index: int, seed: int) -> str | None:
        if index >= self.config.n_videos:
            return None
        return str(Path(video_dir) / f"seed_{seed}.{self.config.video_format}")

    def _rollout(self, vector_env, policy, seeds: list[int], paths: list[str | None],
                 generator: torch.Generator, timing: list) -> list[dict[str, Any]]:
        """One batch of episodes; seeds are padded with the last one to fill every sub-env (extras are
        dropped)."""
        cfg = self.config
        n = vector_env.num_envs
        seeds = seeds + [seeds[-1]] * (n - len(seeds))
        paths = paths + [None] * (n - len(paths))
        if any(paths):
            vector_env.set_attr("video_path", paths)
        obs, _ = vector_env.reset(seed=seeds)
        policy.reset()
        active = np.ones(n, dtype=bool)
        score = np.full(n, -np.inf)
        success = np.zeros(n, dtype=bool)
        coverage = np.zeros(n)
        maxima = {key: np.zeros(n) for key in cfg.info_metrics}
        records: dict[str, list[Any]] = {key: [None] * n for key in cfg.info_records}
        steps = np.zeros(n, dtype=int)
        device = policy_device(policy)
        while active.any():
            tic = time.perf_counter()
            with torch.inference_mode():
                prediction = policy.predict_action(obs_to_torch(obs, device), generator=generator)
            timing[0] += time.perf_counter() - tic
            timing[1] += 1
            action = self._executed(prediction)
            self._check_action(action, vector_env.single_action_space)
            obs, reward, terminated, truncated, info = vector_env.step(action)
            score = np.where(active, np.maximum(score, reward), score)
            success |= active & np.asarray(info.get(cfg.success_key, np.zeros(n)), dtype=bool)
            if cfg.coverage_key:
                coverage = np.where(active, np.maximum(coverage, info.get(cfg.coverage_key, 0.0)), coverage)
            for key, values in maxima.items():
                latest = np.asarray(self._info(info, key, "info_metrics"), dtype=float)
                maxima[key] = np.where(active, np.maximum(values, latest), values)
            ending = active & (terminated | truncated)
            for key, values in records.items():  # each episode keeps its value at its last step only
                column = self._info(info, key, "info_records")
                for i in np.flatnonzero(ending):
                    values[i] = _plain(column[i])
            steps = np.where(active, info["episode_steps"], steps)
            active &= ~ending
        if any(paths):
            vector_env.call("write_video")
        return [{"score": float(score[i]), "success": bool(success[i]), "coverage": float(coverage[i]),
                 "steps": int(steps[i]), "video": paths[i],
                 "info": {key: float(values[i]) for key, values in maxima.items()},
                 "records": {key: values[i] for key, values in records.items()}} for i in range(n)]

    def _info(self, info: dict[str, Any], key: str, field_name: str) -> Any:
        if key not in info:
            raise ValueError(f"RunnerConfig.{field_name} names {key!r} but {self.config.env_id}'s info has "
                             f"{sorted(k for k in info if not k.startswith('_'))}")
        return info[key]

    def _executed(self, prediction: torch.Tensor) -> np.ndarray:
        """prediction [B, prediction_horizon, action_dim] -> executed [B, action_horizon, action_dim]."""
        cfg = self.config
        first = cfg.obs_horizon - 1
        if prediction.ndim != 3 or prediction.shape[1] < first + cfg.action_horizon:
            raise ValueError(f"predict_action returned shape {tuple(prediction.shape)}; expected [B, "
                             f">= {first + cfg.action_horizon}, action_dim] for "
                             f"obs_horizon={cfg.obs_horizon}, action_horizon={cfg.action_horizon}")
        executed = prediction[:, first:first + cfg.action_horizon].detach().cpu().numpy()
        if self.action_transform is not None:
            executed = self.action_transform(executed)  # [B, action_horizon, env action_dim]
        return executed.astype(np.float32)

    def _check_action(self, action: np.ndarray, space: gym.spaces.Space) -> None:
        """action [B, action_horizon, D] must fit the multi-step env's [action_horizon, D_env]."""
        if space.shape is not None and action.shape[1:] != space.shape:
            raise ValueError(f"the policy's executed actions are {action.shape[1:]} but {self.config.env_id} "
                             f"with {self.config.env_kwargs} takes {space.shape}; set the task's "
                             f"runner.action_transform (now {self.config.action_transform!r}) or the env's "
                             f"action mode to match the dataset's actions")

    def _check_policy(self, policy) -> None:
        policy_cfg = getattr(policy, "config", None)
        for name in ("obs_horizon", "action_horizon"):
            value = getattr(policy_cfg, name, None)
            if value is not None and value != getattr(self.config, name):
                raise ValueError(f"policy.config.{name}={value} but RunnerConfig.{name}="
                                 f"{getattr(self.config, name)}; build the runner from the policy's horizons")

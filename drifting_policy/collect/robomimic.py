"""Collect robomimic-format demonstrations (Lift, Can, Square, ToolHang) with the scripted experts.

    drifting-collect task=lift episodes=200 seed=0 noise_std=0.1 render_images=false \
        out=data/robomimic/lift_scripted.hdf5

Episode ``i`` resets the env with seed ``seed + i`` and seeds the expert's generator from the same number (a
separate stream), so an episode depends only on its seed. Each step stores the state and observation *before*
the action, the action (OSC_POSE delta), and the controller's goal as an absolute action (``actions_abs``). An
episode ends at the first success step or at the task horizon; only successful ones are kept unless
``keep_failed``. The file is written to ``<out>.partial`` and renamed when complete; an existing ``out`` is
only replaced with ``overwrite=true``. Images (``render_images``) are rendered from the stored states after
the low-dim pass, which needs a headless GL backend (EGL or OSMesa).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from drifting_policy.collect.robomimic_images import render_images
from drifting_policy.collect.settings import (
    CollectSummary,
    check_demo_seeds,
    config_from_mapping,
    package_version,
    partial_destination,
)
from drifting_policy.data.robomimic_hdf5 import Episode, RobomimicWriter
from envs.robomimic.env import TASKS, RobomimicEnv, RobomimicEnvConfig, ensure_gl_backend
from envs.robomimic.experts import EXPERT_VERSION, EXPERTS, make_expert

EXPERT_STREAM = 7  # the expert's generator is SeedSequence([seed, EXPERT_STREAM]), independent of the env's


@dataclass
class RobomimicCollectConfig:
    task: str = "lift"  # lift | can | square | tool_hang
    out: str | None = None  # None: data/robomimic/<task>_scripted.hdf5
    episodes: int = 200  # attempted; env seeds seed .. seed + episodes - 1
    seed: int = 0
    noise_std: float = 0.1  # Gaussian noise on the arm dimensions of the expert's actions (normalised units)
    render_images: bool = False  # add agentview / eye-in-hand images after collection (needs EGL or OSMesa)
    image_size: int = 84
    keep_failed: bool = False
    max_steps: int | None = None  # None: the task horizon (400 Lift/Can/Square, 700 ToolHang)
    valid_ratio: float = 0.1  # share of demos in mask/valid
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r}; expected one of {sorted(TASKS)}")
        if self.task not in EXPERTS:
            raise ValueError(f"task={self.task!r} has no scripted expert yet; available: {sorted(EXPERTS)}")
        if self.out is None:
            self.out = f"data/robomimic/{self.task}_scripted.hdf5"
        if Path(self.out).suffix not in (".hdf5", ".h5"):
            raise ValueError(
                f"out={self.out!r}: robomimic tasks write hdf5; pass out=<path>.hdf5, e.g. "
                f"out=data/robomimic/{self.task}_scripted.hdf5"
            )
        check_demo_seeds(self.seed, self.episodes)
        if self.noise_std < 0:
            raise ValueError(f"noise_std={self.noise_std}; expected >= 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps={self.max_steps}; expected >= 1 or null")

    @property
    def horizon(self) -> int:
        return TASKS[self.task].horizon if self.max_steps is None else self.max_steps


def collect(cfg: Mapping[str, Any]) -> CollectSummary:
    """Entry for ``drifting-collect task=lift|can|square|tool_hang``: cfg holds RobomimicCollectConfig
    fields."""
    cfg = dict(cfg)
    if str(cfg.get("out") or "").endswith(".zarr"):  # the shared collect config's Push-T default
        cfg["out"] = None
    # obs_types is a Push-T option: robomimic files always hold the low-dim keys
    return collect_robomimic(config_from_mapping(RobomimicCollectConfig, cfg, frozenset({"obs_types"})))


def collect_robomimic(config: RobomimicCollectConfig) -> CollectSummary:
    out = Path(config.out)
    partial = partial_destination(out, config.overwrite)
    if config.render_images:
        ensure_gl_backend()  # fail before the long low-dim pass, with the reason
    out.parent.mkdir(parents=True, exist_ok=True)
    env = RobomimicEnv(
        RobomimicEnvConfig(task=config.task, horizon=config.horizon, terminate_on_success=False)
    )
    writer = RobomimicWriter(partial, env.env_args, attrs=_attrs(config))
    start = time.perf_counter()
    try:
        attempted, succeeded = _run_episodes(config, env, writer)
        if writer.n_demos == 0:
            raise RuntimeError(f"no episode kept out of {attempted} (succeeded {succeeded}); nothing written")
        seconds = time.perf_counter() - start
        writer.finish(
            config.valid_ratio,
            config.seed,
            attrs={
                "attempted": attempted,
                "succeeded": succeeded,
                "kept": writer.n_demos,
                "collect_seconds": round(seconds, 2),
                "complete": True,
            },
        )
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    finally:
        env.close()
    if config.render_images:
        render_images(partial, config.image_size, progress=config.progress)
    partial.replace(out)
    return CollectSummary(
        out, attempted, succeeded, writer.n_demos, writer.total, time.perf_counter() - start
    )


def _run_episodes(
    config: RobomimicCollectConfig, env: RobomimicEnv, writer: RobomimicWriter
) -> tuple[int, int]:
    succeeded = 0
    seeds = range(config.seed, config.seed + config.episodes)
    with tqdm(seeds, desc=f"collect {config.task}", unit="ep", disable=not config.progress) as bar:
        for attempted, seed in enumerate(bar, start=1):
            rng = np.random.default_rng(np.random.SeedSequence([seed, EXPERT_STREAM]))
            expert = make_expert(config.task, rng, config.noise_std)
            episode, success = record_episode(env, expert, seed)
            succeeded += success
            if success or config.keep_failed:
                writer.add(episode)
            bar.set_postfix(success=f"{succeeded / attempted:.1%}", kept=writer.n_demos)
    return config.episodes, succeeded


def record_episode(env: RobomimicEnv, expert: Any, seed: int) -> tuple[Episode, bool]:
    """Run one episode to the first success or the env's horizon; returns it and whether it succeeded."""
    obs, _ = env.reset(seed=seed)
    expert.reset()
    model_file = env.model_xml()
    states, actions, actions_abs, rewards, observations, next_observations = [], [], [], [], [], []
    success = False
    while True:
        states.append(env.get_state())
        action = expert.act(env)
        next_obs, reward, _, truncated, info = env.step(action)
        actions.append(action)
        actions_abs.append(env.absolute_action(action[-1]))
        rewards.append(reward)
        observations.append(obs)
        next_observations.append(next_obs)
        obs = next_obs
        success = info["is_success"]
        if success or truncated:
            break
    dones = np.zeros(len(actions))
    dones[-1] = 1.0
    stack = lambda items: {k: np.stack([o[k] for o in items]) for k in items[0]}  # noqa: E731
    episode = Episode(
        states=np.stack(states),
        actions=np.stack(actions),
        rewards=np.asarray(rewards, np.float64),
        dones=dones,
        obs=stack(observations),
        next_obs=stack(next_observations),
        model_file=model_file,
        extras={"actions_abs": np.stack(actions_abs)},
        attrs={"seed": seed, "success": success},
    )
    return episode, bool(success)


def _attrs(config: RobomimicCollectConfig) -> dict[str, Any]:
    return {
        "complete": False,
        "task": config.task,
        "expert": type(make_expert(config.task, np.random.default_rng(0))).__name__,
        "expert_version": EXPERT_VERSION,
        "seed": config.seed,  # first env seed; demo attrs hold each demo's seed
        "n_seeds": config.episodes,
        "noise_std": config.noise_std,
        "horizon": config.horizon,
        "keep_failed": config.keep_failed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": ", ".join(
            f"{p} {package_version(p)}" for p in ("drifting-policy", "robosuite", "mujoco", "numpy")
        ),
    }



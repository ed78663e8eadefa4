"""Collect Push-T demonstrations with the scripted expert into a zarr replay buffer (DP's layout).

Episode ``i`` uses env seed ``seed + i`` (Diffusion Policy's legacy reset) and an expert whose
generator is seeded with the same number, so an episode depends only on its seed. Each recorded step
holds the observation *before* the action and the action then taken (DP's convention); an episode ends
at success (coverage > 0.95) or after ``max_steps``. Only successful episodes are kept unless
``keep_failed``.

Safety: the store is written to ``<out>.partial`` with attribute ``complete=False`` and renamed to
``<out>`` (``complete=True``) only after the last episode, so an interrupted run never leaves a store
at ``<out>``, and ``ReplayBuffer.open`` refuses the ``.partial`` one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from drifting_policy.collect.settings import (
    CollectSummary,
    ZarrCollectConfig,
    collect_zarr,
    config_from_mapping,
    run_expert_episodes,
    store_attrs,
)
from drifting_policy.data.replay_buffer import ReplayBuffer

OBS_TYPES = ("state", "keypoints", "image")
# Episodes are written in batches: every zarr append costs ~10 ms per array, and an interrupted run
# is discarded anyway.
WRITE_EVERY = 16

DEFAULT_OUT = "data/pusht/pusht_scripted.zarr"

ExpertFactory = Callable[[np.random.Generator, float], Any]


@dataclass
class PushTCollectConfig(ZarrCollectConfig):
    """What to collect. ``obs_types`` picks the recorded observations beyond ``state``, ``action`` and
    ``n_contacts`` (always stored): "keypoints" -> ``data/keypoint``, "image" -> ``data/img``.
    ``noise_std`` is in pixels."""

    task_label: ClassVar[str] = "Push-T"
    noise_units: ClassVar[str] = "pixels"
    reference_steps: ClassVar[str] = "DP uses 300"

    out: str = DEFAULT_OUT
    obs_types: tuple[str, ...] = OBS_TYPES
    render_images: bool = True  # False drops "image" (about 3x faster collection)
    # DART-style recovery data: the env executes the expert's action plus N(0, sigma^2) pixels while the
    # store records the expert's own action, so demos show how it recovers from states it would not visit
    execution_noise_std: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        self.obs_types = tuple(self.obs_types)
        unknown = set(self.obs_types) - set(OBS_TYPES)
        if unknown:
            raise ValueError(f"obs_types={list(self.obs_types)}; unknown {sorted(unknown)}, expected a "
                             f"subset of {OBS_TYPES}")
        if self.execution_noise_std < 0:
            raise ValueError(f"execution_noise_std={self.execution_noise_std}; expected >= 0 (pixels)")

    @property
    def record_images(self) -> bool:
        return self.render_images and "image" in self.obs_types

    @property
    def recorded_obs_types(self) -> tuple[str, ...]:
        return tuple(t for t in self.obs_types if t != "image" or self.record_images)


def collect(cfg: Mapping[str, Any]) -> CollectSummary:
    """Entry for ``drifting-collect task=pusht``: cfg holds PushTCollectConfig fields (+ ``task``)."""
    return collect_pusht(config_from_mapping(PushTCollectConfig, cfg))


def collect_pusht(config: PushTCollectConfig, expert_factory: ExpertFactory | None = None) -> CollectSummary:
    """Run the expert on seeds seed .. seed + episodes - 1 and write ``config.out``.

    expert_factory(rng, noise_std) -> object with ``reset()`` and ``act(env) -> [2]``; default
    ``envs.pusht.expert.PushTExpert``.
    """
    if expert_factory is None:
        expert_factory, expert_version = _default_expert()
    else:
        expert_version = getattr(expert_factory, "version", "custom")
    return collect_zarr(Path(config.out), config.overwrite, _attrs(config, expert_version),
                        lambda buffer: _run_episodes(config, buffer, expert_factory))


def _default_expert() -> tuple[ExpertFactory, str]:
    from envs.pusht import expert as expert_module

    version = getattr(expert_module, "EXPERT_VERSION", None) or getattr(expert_module, "__version__",
                                                                        "unversioned")

    def factory(rng: np.random.Generator, noise_std: float) -> Any:
        return expert_module.PushTExpert(rng, noise_std=noise_std)

    return factory, str(version)


def _attrs(config: PushTCollectConfig, expert_version: str) -> dict[str, Any]:
    attrs = store_attrs(config, "pusht", "envs.pusht.expert.PushTExpert", expert_version, env_package())
    return {**attrs, "obs_types": list(config.recorded_obs_types),
            "execution_noise_std": config.execution_noise_std}


def env_package() -> Path:
    """envs/pusht: the folder whose code a store's source_sha256 names."""
    import envs.pusht

    return Path(envs.pusht.__file__).parent


def _run_episodes(config: PushTCollectConfig, buffer: ReplayBuffer,
                  expert_factory: ExpertFactory) -> tuple[int, int]:
    from envs.pusht.env import PushTEnv

    obs_type = "image" if config.record_images else "keypoints"
    env = PushTEnv(obs_type=obs_type, max_episode_steps=config.max_steps)
    return run_expert_episodes(env, config, buffer, expert_factory, desc="collect pusht",
                               is_success=lambda info: info["is_success"],
                               record=lambda expert, seed: record_episode(env, expert, seed, config),
                               write_every=WRITE_EVERY)


def record_episode(env: Any, expert: Any, seed: int,
                   config: PushTCollectConfig) -> tuple[dict[str, np.ndarray], dict]:
    """One episode: {key: [T, ...]} of pre-action observations and actions (the store's keys, which differ
    from the env's), and the last step's info."""
    from envs.pusht.geometry import WINDOW_SIZE, block_keypoints

    obs, info = env.reset(seed=seed)
    expert.reset()
    perturbation = np.random.default_rng([seed, 1])  # execution noise: its own stream, fixed by the seed
    steps: dict[str, list[np.ndarray]] = {"state": [], "action": [], "n_contacts": []}
    if "keypoints" in config.obs_types:
        steps["keypoint"] = []
    if config.record_images:
        steps["img"] = []
    for _ in range(config.max_steps):
        action = np.asarray(expert.act(env), dtype=np.float32).reshape(2)
        steps["state"].append(np.asarray(info["state"], dtype=np.float32))  # [5]
        steps["n_contacts"].append(np.array([info["n_contacts"]], dtype=np.float32))  # [1]
        if "keypoint" in steps:
            steps["keypoint"].append(block_keypoints(env.world.block_pose()).astype(np.float32))  # [9, 2]
        if "img" in steps:
            steps["img"].append(obs["image"])  # [96, 96, 3] uint8
        steps["action"].append(action)  # the expert's label, also under execution noise
        if config.execution_noise_std > 0:
            noise = config.execution_noise_std * perturbation.standard_normal(2)
            action = np.clip(action + noise, 0.0, float(WINDOW_SIZE)).astype(np.float32)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return {key: np.stack(values) for key, values in steps.items()}, info

"""Collect block-pushing demonstrations with the scripted expert into a zarr replay buffer.

Episode ``i`` uses env seed ``seed + i`` and an expert whose generator is seeded with the same number, so
an episode depends only on its seed. Each recorded step holds the observation *before* the action and the
action then taken (Diffusion Policy's convention), under the env's observation keys: ``data/block_pose``
[T, 2, 3], ``data/effector_pos`` [T, 2], ``data/effector_target`` [T, 2], ``data/target_pose`` [T, 2, 3],
``data/action`` [T, 2]. An episode ends when both cubes are in distinct zones (p2) or after ``max_steps``;
only p2 episodes are kept unless ``keep_failed``.

Per episode, ``meta/`` holds ``seed``, ``success`` and the modes: ``first_block`` (the cube the expert
pushed first), ``zone_of_block0`` (the zone it assigned to cube 0) and ``first_in`` (the cube the env saw
enter a zone first; -1 if none did).
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

DEFAULT_OUT = "data/blockpush/blockpush_scripted.zarr"
WRITE_EVERY = 32  # episodes per zarr append (each append costs ~10 ms per array)
# Settings of other tasks that drifting-collect passes along (null unless set)
OTHER_TASKS_SETTINGS = frozenset({"obs_types", "render_images", "execution_noise_std", "image_size",
                                  "valid_ratio"})

ExpertFactory = Callable[[np.random.Generator, float], Any]


@dataclass
class BlockPushCollectConfig(ZarrCollectConfig):
    task_label: ClassVar[str] = "block pushing"
    noise_units: ClassVar[str] = "metres"
    reference_steps: ClassVar[str] = "Diffusion Policy uses 350"

    out: str = DEFAULT_OUT
    max_steps: int = 350  # Diffusion Policy's block-pushing episode length


def collect(cfg: Mapping[str, Any]) -> CollectSummary:
    """Entry for ``drifting-collect task=blockpush``: cfg holds BlockPushCollectConfig fields (+ ``task``)."""
    return collect_blockpush(config_from_mapping(BlockPushCollectConfig, cfg, ignored=OTHER_TASKS_SETTINGS))


def collect_blockpush(config: BlockPushCollectConfig,
                      expert_factory: ExpertFactory | None = None) -> CollectSummary:
    """Run the expert on seeds seed .. seed + episodes - 1 and write ``config.out``.

    expert_factory(rng, noise_std) -> object with ``reset()``, ``act(env) -> [2]``, ``order`` and
    ``assignment``; default ``envs.blockpush.expert.BlockPushExpert``.
    """
    from envs.blockpush import expert as expert_module

    version = expert_module.EXPERT_VERSION
    if expert_factory is None:
        expert_factory = expert_module.BlockPushExpert
    else:
        version = getattr(expert_factory, "version", "custom")
    return collect_zarr(Path(config.out), config.overwrite, _attrs(config, version),
                        lambda buffer: _run_episodes(config, buffer, expert_factory))


def _attrs(config: BlockPushCollectConfig, expert_version: str) -> dict[str, Any]:
    import envs.blockpush

    return store_attrs(config, "blockpush", "envs.blockpush.expert.BlockPushExpert", expert_version,
                       Path(envs.blockpush.__file__).parent)


def _run_episodes(config: BlockPushCollectConfig, buffer: Any,
                  expert_factory: ExpertFactory) -> tuple[int, int]:
    from envs.blockpush.env import BlockPushEnv

    env = BlockPushEnv(max_episode_steps=config.max_steps, render_mode=None)
    return run_expert_episodes(
        env, config, buffer, expert_factory, desc="collect blockpush", is_success=lambda info: info["p2"],
        episode_meta=lambda expert, info: {"first_block": expert.order[0],
                                           "zone_of_block0": expert.assignment[0],
                                           "first_in": info["first_block"]},
        write_every=WRITE_EVERY)

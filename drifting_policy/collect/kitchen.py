"""Collect Franka Kitchen demonstrations with the scripted expert into a zarr replay buffer.

Episode ``i`` uses env seed ``seed + i`` and an expert whose generator is seeded with the same number, so
an episode depends only on its seed. Each recorded step holds the observation *before* the action and the
action then taken (Diffusion Policy's convention), under the env's observation keys: ``data/robot_qpos``
[T, 9], ``data/object_qpos`` [T, 21], ``data/action`` [T, 9] (joint velocity commands). An episode ends when
four distinct tasks are complete (p4) or after ``max_steps``; only p4 episodes are kept unless
``keep_failed``.

Per episode, ``meta/`` holds ``seed``, ``success``, ``planned_0`` .. ``planned_3`` (the expert's four tasks in
its order, as indices into ``envs.kitchen.env.TASKS``, also the store's ``task_names`` attribute) and
``achieved_0`` .. ``achieved_3`` (the first four tasks the env saw completed, -1 for none).
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

DEFAULT_OUT = "data/kitchen/kitchen_scripted.zarr"
WRITE_EVERY = 32  # episodes per zarr append
N_ORDER = 4  # tasks per demonstration
OTHER_TASKS_SETTINGS = frozenset({"obs_types", "render_images", "execution_noise_std", "image_size",
                                  "valid_ratio"})

ExpertFactory = Callable[[np.random.Generator, float], Any]


@dataclass
class KitchenCollectConfig(ZarrCollectConfig):
    task_label: ClassVar[str] = "the kitchen"
    reference_steps: ClassVar[str] = "the expert takes ~255"

    out: str = DEFAULT_OUT
    episodes: int = 500
    max_steps: int = 360  # the expert takes ~255 steps (up to ~290) for four tasks; Diffusion Policy: 280


def collect(cfg: Mapping[str, Any]) -> CollectSummary:
    """Entry for ``drifting-collect task=kitchen``: cfg holds KitchenCollectConfig fields (+ ``task``)."""
    return collect_kitchen(config_from_mapping(KitchenCollectConfig, cfg, ignored=OTHER_TASKS_SETTINGS))


def collect_kitchen(config: KitchenCollectConfig,
                    expert_factory: ExpertFactory | None = None) -> CollectSummary:
    """Run the expert on seeds seed .. seed + episodes - 1 and write ``config.out``.

    expert_factory(rng, noise_std) -> object with ``reset()``, ``act(env) -> [9]`` and ``order`` (task
    names); default ``envs.kitchen.expert.KitchenExpert``.
    """
    from envs.kitchen import expert as expert_module

    version = expert_module.EXPERT_VERSION
    if expert_factory is None:
        expert_factory = expert_module.KitchenExpert
    else:
        version = getattr(expert_factory, "version", "custom")
    return collect_zarr(Path(config.out), config.overwrite, _attrs(config, version),
                        lambda buffer: _run_episodes(config, buffer, expert_factory))


def _attrs(config: KitchenCollectConfig, expert_version: str) -> dict[str, Any]:
    import envs.kitchen
    from envs.kitchen.env import TASKS

    attrs = store_attrs(config, "kitchen", "envs.kitchen.expert.KitchenExpert", expert_version,
                        Path(envs.kitchen.__file__).parent)
    return {**attrs, "task_names": list(TASKS)}  # meta/planned_k and meta/achieved_k index task_names


def order_meta(prefix: str, names: list[str] | tuple[str, ...]) -> dict[str, int]:
    """{"<prefix>_0": ..., "<prefix>_3": ...}: the first N_ORDER task names as indices into TASKS, -1 for
    none (meta/ arrays hold one number per episode)."""
    from envs.kitchen.env import TASKS

    indices = [TASKS.index(name) for name in list(names)[:N_ORDER]]
    indices += [-1] * (N_ORDER - len(indices))
    return {f"{prefix}_{k}": indices[k] for k in range(N_ORDER)}


def _run_episodes(config: KitchenCollectConfig, buffer: Any,
                  expert_factory: ExpertFactory) -> tuple[int, int]:
    from envs.kitchen.env import FrankaKitchenEnv

    env = FrankaKitchenEnv(max_episode_steps=config.max_steps)
    try:
        return run_expert_episodes(
            env, config, buffer, expert_factory, desc="collect kitchen", is_success=lambda info: info["p4"],
            episode_meta=lambda expert, info: {**order_meta("planned", expert.order),
                                               **order_meta("achieved", info["completed_tasks"])},
            write_every=WRITE_EVERY)
    finally:
        env.close()


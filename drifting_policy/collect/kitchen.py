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
from tqdm import tqdm

from drifting_policy.collect.settings import (
    CollectSummary,
    ZarrCollectConfig,
    collect_zarr,
    config_from_mapping,
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
    succeeded, kept = 0, 0
    pending: list[dict[str, np.ndarray]] = []
    pending_meta: list[dict[str, Any]] = []
    seeds = range(config.seed, config.seed + config.episodes)
    with tqdm(seeds, desc="collect kitchen", unit="ep", disable=not config.progress) as bar:
        for attempted, seed in enumerate(bar, start=1):
            expert = expert_factory(np.random.default_rng(seed), config.noise_std)
            episode, info = record_episode(env, expert, seed, config.max_steps)
            success = bool(info["p4"])
            succeeded += success
            if success or config.keep_failed:
                pending.append(episode)
                pending_meta.append({"seed": seed, "success": success,
                                     **order_meta("planned", expert.order),
                                     **order_meta("achieved", info["completed_tasks"])})
                kept += 1
            if len(pending) >= WRITE_EVERY or (attempted == config.episodes and pending):
                buffer.add_episodes(pending, pending_meta)
                pending, pending_meta = [], []
            bar.set_postfix(success=f"{succeeded / attempted:.1%}", kept=kept)
    env.close()
    return config.episodes, succeeded


def record_episode(env: Any, expert: Any, seed: int, max_steps: int) -> tuple[dict[str, np.ndarray], dict]:
    """One episode: ({key: [T, ...]} of pre-action observations and actions, the last step's info)."""
    obs, info = env.reset(seed=seed)
    expert.reset()
    steps: dict[str, list[np.ndarray]] = {key: [] for key in (*obs, "action")}
    for _ in range(max_steps):
        action = np.asarray(expert.act(env), dtype=np.float32).reshape(-1)
        for key, value in obs.items():
            steps[key].append(value)
        steps["action"].append(action)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return {key: np.stack(values) for key, values in steps.items()}, info

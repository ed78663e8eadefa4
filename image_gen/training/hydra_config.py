"""Hydra plumbing of the training entry points: each objective's dataclass defaults are the hydra option
``objective: <name>`` (package _global_), so a YAML in configs/image_gen selects its objective with

    defaults:
      - objective: flow
      - _self_

and keeps only what it changes; the composed config becomes that objective's dataclass again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from drifting_policy.common.entry import dataclass_defaults
from image_gen.objectives import OBJECTIVES, config_class
from image_gen.training.config import ImageTrainConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "image_gen"


def register_objectives() -> None:
    """Store every objective's defaults in hydra's ConfigStore, group ``objective`` (entry points only)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name in OBJECTIVES:
        node = dataclass_defaults(config_class(name))
        store.store(group="objective", name=name, node=node, package="_global_")


def config_from_dict(values: dict) -> ImageTrainConfig:
    """The objective's config dataclass from a composed config (``values["objective"]`` picks the class)."""
    values = {key: value for key, value in values.items() if key != "hydra"}
    name = values.get("objective")
    cls = config_class(name)
    unknown = sorted(set(values) - {spec.name for spec in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"config keys {unknown} are not fields of objective={name!r} ({cls.__name__}); drop "
                         f"them, or use a config written for that objective (`objective: {name}` in its "
                         "defaults list)")
    return cls(**values)


def compose_train_config(config_name: str, overrides: Sequence[str] = ()) -> ImageTrainConfig:
    """configs/image_gen/<config_name>.yaml with hydra ``key=value`` overrides, without hydra.main (tools,
    tests)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    register_objectives()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose(config_name=config_name, overrides=list(overrides))
    return config_from_dict(OmegaConf.to_container(cfg, resolve=True))

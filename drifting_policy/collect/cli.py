"""``drifting-collect``: scripted demonstrations into a zarr replay buffer, dispatched on ``task``.

    drifting-collect task=pusht episodes=200 seed=0 out=data/pusht/pusht_scripted.zarr

pusht -> ``drifting_policy.collect.pusht.collect(cfg)``;
lift | can | tool_hang -> ``drifting_policy.collect.robomimic.collect(cfg)``.
Both take the plain config dict (configs/collect/config.yaml plus overrides).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from drifting_policy.common.entry import check_overrides, report_user_errors

COLLECTORS = {
    "pusht": "drifting_policy.collect.pusht",
    "lift": "drifting_policy.collect.robomimic",
    "can": "drifting_policy.collect.robomimic",
    "tool_hang": "drifting_policy.collect.robomimic",
}


def run_collect(cfg: Mapping[str, Any]) -> Any:
    """Import the task's collector lazily and run it on ``cfg`` (a plain mapping)."""
    task = cfg.get("task")
    if task not in COLLECTORS:
        raise ValueError(f"task={task!r}; expected one of {sorted(COLLECTORS)}")
    module_name = COLLECTORS[task]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name not in (module_name, module_name.rsplit(".", 1)[0]):
            raise  # a dependency of the collector is missing: show the real error
        raise RuntimeError(f"task={task} needs {module_name}, which is not in this installation yet; "
                           f"collect task=pusht, or add {module_name.replace('.', '/')}.py") from error
    return module.collect(cfg)


@hydra.main(config_path="../../configs/collect", config_name="config", version_base=None)
@report_user_errors
def _main(cfg: DictConfig) -> None:
    summary = run_collect(OmegaConf.to_container(cfg, resolve=True))
    print(summary)


def main() -> None:
    report_user_errors(check_overrides)("configs.collect", "config")
    _main()


if __name__ == "__main__":
    main()

"""``drifting-collect``: scripted demonstrations into a zarr replay buffer, dispatched on ``task``.

    drifting-collect task=pusht episodes=200 seed=0 out=data/pusht/pusht_scripted.zarr
    drifting-collect task=pusht episodes=200 seed=0 format=lerobot out=data/pusht/pusht_scripted_lerobot
    drifting-collect task=blockpush episodes=1000 seed=0 out=data/blockpush/blockpush_scripted.zarr
    drifting-collect task=kitchen episodes=500 seed=0 out=data/kitchen/kitchen_scripted.zarr

pusht -> ``drifting_policy.collect.pusht.collect(cfg)``;
blockpush -> ``drifting_policy.collect.blockpush.collect(cfg)``;
kitchen -> ``drifting_policy.collect.kitchen.collect(cfg)``;
lift | can | square | tool_hang -> ``drifting_policy.collect.robomimic.collect(cfg)``.
Each takes the plain config dict (configs/collect/config.yaml plus overrides). ``format=lerobot`` collects
into the task's own store beside ``out`` and converts it to a LeRobot v3.0 folder at ``out``
(``drifting_policy.data.lerobot_export``, Push-T and robomimic stores only), removing the store once the
export succeeded.
"""

from __future__ import annotations

import dataclasses
import importlib
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from drifting_policy.common.entry import check_overrides, report_user_errors

COLLECTORS = {
    "pusht": "drifting_policy.collect.pusht",
    "blockpush": "drifting_policy.collect.blockpush",
    "kitchen": "drifting_policy.collect.kitchen",
    "lift": "drifting_policy.collect.robomimic",
    "can": "drifting_policy.collect.robomimic",
    "square": "drifting_policy.collect.robomimic",
    "tool_hang": "drifting_policy.collect.robomimic",
}

NATIVE_FORMATS = {"pusht": "zarr", "blockpush": "zarr", "kitchen": "zarr", "lift": "hdf5", "can": "hdf5",
                  "square": "hdf5", "tool_hang": "hdf5"}
LEROBOT = "lerobot"
LEROBOT_TASKS = ("pusht", "lift", "can", "tool_hang")  # stores drifting_policy.data.lerobot_export converts


def run_collect(cfg: Mapping[str, Any]) -> Any:
    """Import the task's collector lazily and run it on ``cfg`` (a plain mapping); ``cfg["format"]``: null
    (the task's own store), its name (zarr / hdf5) or lerobot."""
    cfg = dict(cfg)
    task, store_format = cfg.get("task"), cfg.pop("format", None)
    if store_format not in (None, NATIVE_FORMATS.get(task), LEROBOT):
        raise ValueError(f"format={store_format!r}; expected null, {NATIVE_FORMATS.get(task, 'zarr|hdf5')!r} "
                         f"or {LEROBOT!r} for task={task}")
    if store_format == LEROBOT:
        if task not in LEROBOT_TASKS:
            raise ValueError(f"format=lerobot: the LeRobot export converts {LEROBOT_TASKS} stores, not "
                             f"task={task}; drop format= to write the task's "
                             f"{NATIVE_FORMATS.get(task)} store")
        return _collect_lerobot(cfg)
    return _collector(task).collect(cfg)


def _collect_lerobot(cfg: dict[str, Any]) -> Any:
    """Collect into ``<out>.source.<zarr|hdf5>``, export it to the LeRobot folder ``out``, drop the store."""
    from drifting_policy.data.lerobot_export import export

    task = cfg.get("task")
    folder = "pusht" if task == "pusht" else "robomimic"
    out = Path(cfg.get("out") or f"data/{folder}/{task}_scripted_lerobot")
    if out.suffix in (".zarr", ".hdf5", ".h5"):
        raise ValueError(f"format=lerobot writes a folder; out={out} looks like a store: pass e.g. "
                         f"out={out.with_suffix('')}_lerobot")
    if out.exists() and not cfg.get("overwrite"):
        raise FileExistsError(f"{out} exists; pass overwrite=true to replace it, or choose another out=")
    source = out.with_name(f"{out.name}.source.{NATIVE_FORMATS.get(task, 'zarr')}")
    summary = _collector(task).collect({**cfg, "out": str(source), "overwrite": True})
    try:
        export(source, out, overwrite=True, progress=bool(cfg.get("progress", True)))
    except BaseException:  # the collection may have taken hours: keep it for a second export
        print(f"export to {out} failed; the collected store stays at {source}: convert it with python -m "
              f"drifting_policy.data.lerobot export --from {source} --out {out}", file=sys.stderr)
        raise
    if source.is_dir():
        shutil.rmtree(source)
    else:
        source.unlink()
    return dataclasses.replace(summary, out=out)


def _collector(task: Any) -> Any:
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
    return module


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

"""The run-folder rule every trainer follows, checked before anything is written.

- A folder with a checkpoint is continued only when asked (`resume`), and only under the configuration it was
  started with: every setting must match the stored one except an explicit allow-list (budget, cadence of
  logging, evaluation and checkpoints, progress display). A refused start writes nothing.
- A folder holding files of a run that never wrote a checkpoint is refused too (its files would be mixed with
  the new run's); a folder this process created is removed again if the run fails before its first checkpoint.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# settings a resumed run may change: how long it runs and how often it logs, evaluates and saves
RESUME_MAY_CHANGE = (
    "train.max_steps", "train.max_minutes", "train.eval_every", "train.eval_at_end", "train.val_every",
    "train.val_batches", "train.checkpoint_every", "train.save_every", "train.log_every", "train.progress",
    "train.num_workers", "train.num_threads", "train.precision", "train.resume", "wandb", "eval_train_seeds",
    "task.runner.n_envs", "task.runner.n_videos", "task.runner.vector_mode",
)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and tuples are compared as lists."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def config_differences(stored: Mapping[str, Any], new: Mapping[str, Any],
                       may_change: Iterable[str] = RESUME_MAY_CHANGE,
                       defaults: Mapping[str, Any] | None = None) -> list[str]:
    """`key: stored -> new` for every setting that differs and is not under a `may_change` prefix.

    `defaults` (nested like the configs) stands in for settings a stored config lacks because the run was
    started by an older version that did not have them: a run resumes under the default it implicitly had.
    """
    allowed = tuple(may_change)
    old, now = flatten(stored), flatten(new)
    implicit = flatten(defaults or {})
    old.update({key: implicit[key] for key in now.keys() - old.keys() if key in implicit})
    changed = []
    # what a reader checks first: which method, which task, which seed; then the rest alphabetically
    first = ("policy.name", "task.name", "seed")
    for key in sorted(set(old) | set(now), key=lambda k: (first.index(k) if k in first else len(first), k)):
        if any(key == prefix or key.startswith(prefix + ".") for prefix in allowed):
            continue
        if old.get(key, "<absent>") != now.get(key, "<absent>"):
            changed.append(f"{key}: {old.get(key, '<absent>')!r} -> {now.get(key, '<absent>')!r}")
    return changed


def check_run_folder(run_dir: str | Path, checkpoint: Path, resume: bool, stored_config: Mapping | None,
                     new_config: Mapping[str, Any], may_change: Iterable[str] = RESUME_MAY_CHANGE,
                     describe: str = "", resume_key: str = "train.resume",
                     folder_key: str = "run_dir", defaults: Mapping[str, Any] | None = None) -> bool:
    """Apply the rule; True when the run continues from `checkpoint`. Raises FileExistsError or ValueError
    (one line: the folder, what it holds, the fix) and writes nothing. `describe` says what the stored run is
    (e.g. "a drifting policy"); `resume_key` and `folder_key` are the trainer's settings the fixes name;
    `defaults` as in :func:`config_differences`."""
    run_dir = Path(run_dir)
    holds = f" ({describe})" if describe else ""
    if checkpoint.exists():
        if not resume:
            raise FileExistsError(f"{run_dir} already holds a run{holds} with checkpoint {checkpoint.name} "
                                  f"and resume is off; pick a new {folder_key}, or resume it "
                                  f"({resume_key}=true)")
        changed = config_differences(stored_config or {}, new_config, may_change, defaults)
        if changed:
            shown = "; ".join(changed[:6]) + (f"; and {len(changed) - 6} more" if len(changed) > 6 else "")
            raise ValueError(f"{run_dir} holds a run{holds} started with other settings ({shown}); resume it "
                             f"with its own settings, or pick a new {folder_key} for the new ones")
        return True
    leftovers = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    if leftovers:
        raise FileExistsError(f"{run_dir} holds {leftovers[:5]} but no checkpoint (a run that stopped before "
                              f"its first checkpoint?); delete the folder or pick a new {folder_key}")
    return False


class RunFolderGuard:
    """Context manager for a fresh run: removes the run folder again if the run fails before the first
    checkpoint exists and the folder did not exist before (so failed starts leave nothing behind)."""

    def __init__(self, run_dir: str | Path, checkpoint: Path):
        self.run_dir, self.checkpoint = Path(run_dir), checkpoint
        self.created = not self.run_dir.exists()

    def __enter__(self) -> RunFolderGuard:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None and self.created and not self.checkpoint.exists():
            shutil.rmtree(self.run_dir, ignore_errors=True)

"""What every scripted-demonstration collector shares: settings parsing, the summary, safe destinations,
the ``.partial`` zarr store that becomes ``out`` only when complete."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

PARTIAL_SUFFIX = ".partial"  # a collection in progress; renamed to its final name only when complete
TEST_SEED_START = 100_000  # evaluation seeds start here (Diffusion Policy); demonstration seeds stay below
ConfigT = TypeVar("ConfigT")


@dataclass
class CollectSummary:
    out: Path
    attempted: int
    succeeded: int
    kept: int
    steps: int
    seconds: float


def config_from_mapping(config_class: type[ConfigT], cfg: Mapping[str, Any],
                        ignored: frozenset[str] = frozenset()) -> ConfigT:
    """Build a collector config from ``drifting-collect``'s settings; null means the task's default.

    Settings other tasks use are listed in ``ignored``; any other unknown, non-null setting is an error.
    """
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(k for k, v in cfg.items() if k not in fields | ignored | {"task"} and v is not None)
    if unknown:
        raise ValueError(f"collect(task={cfg.get('task')}): unknown settings {unknown}; "
                         f"known: {sorted(fields)}")
    return config_class(**{k: v for k, v in cfg.items() if k in fields and v is not None})


def partial_destination(out: Path, overwrite: bool) -> Path:
    """The in-progress path for ``out``; refuses to touch an existing ``out`` unless ``overwrite``."""
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=true to replace it, or choose another out=")
    return out.with_name(out.name + PARTIAL_SUFFIX)


def check_demo_seeds(seed: int, episodes: int) -> None:
    """Demonstrations use env seeds seed .. seed + episodes - 1, which must stay below the test seeds."""
    if episodes < 1:
        raise ValueError(f"episodes={episodes}; expected >= 1")
    if seed < 0 or seed + episodes > TEST_SEED_START:
        raise ValueError(f"seeds {seed}..{seed + episodes - 1} must lie in [0, {TEST_SEED_START}): "
                         f"seeds from {TEST_SEED_START} on are the evaluation seeds; lower seed or episodes")


def package_version(package: str = "drifting-policy") -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def source_digest(package_dir: Path) -> str:
    """sha256 (16 hex) of the *.py files of one env package (e.g. envs/pusht): the env and expert code a
    store was collected with, which identifies the data even when the expert version was not bumped."""
    digest = hashlib.sha256()
    for path in sorted(Path(package_dir).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def collect_zarr(out: Path, overwrite: bool, attrs: Mapping[str, Any],
                 fill: Callable[[Any], tuple[int, int]]) -> CollectSummary:
    """Run ``fill(buffer) -> (attempted, succeeded)`` into a new replay buffer at ``<out>.partial``
    (attribute ``complete=False``), then record the counts, mark it complete and swap it in at ``out``.

    An interrupted or failed run leaves only the ``.partial`` store, which ``ReplayBuffer.open`` refuses.
    """
    from drifting_policy.common.io import replace_folder
    from drifting_policy.data.replay_buffer import COMPLETE_ATTR, ReplayBuffer

    partial = partial_destination(out, overwrite)
    if partial.exists():  # left by an interrupted run
        shutil.rmtree(partial)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = ReplayBuffer.create(partial, attrs={**attrs, COMPLETE_ATTR: False})
    start = time.perf_counter()
    try:
        attempted, succeeded = fill(buffer)
    except BaseException:
        print(f"collection interrupted; incomplete store left at {partial} (never read as a dataset)",
              file=sys.stderr)
        raise
    seconds = time.perf_counter() - start
    if buffer.n_episodes == 0:
        raise RuntimeError(f"no episode kept out of {attempted} (succeeded {succeeded}); nothing "
                           f"written to {out}")
    buffer.update_attrs(attempted=attempted, succeeded=succeeded, kept=buffer.n_episodes,
                        steps=buffer.n_steps, seconds=round(seconds, 2), **{COMPLETE_ATTR: True})
    replace_folder(partial, out)  # an overwritten store survives a crash during the swap
    return CollectSummary(out, attempted, succeeded, buffer.n_episodes, buffer.n_steps, seconds)

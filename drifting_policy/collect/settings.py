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
from typing import Any, ClassVar, TypeVar

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


@dataclass
class ZarrCollectConfig:
    """Settings every zarr collector (Push-T, block pushing, kitchen) shares and checks the same way.
    Subclasses set the defaults (``out`` first of all) and the words their errors use."""

    task_label: ClassVar[str] = "this task"  # "<task_label> writes a zarr store"
    noise_units: ClassVar[str] = "action units"
    reference_steps: ClassVar[str] = ""  # e.g. "Diffusion Policy uses 350", quoted in the max_steps error

    out: str = ""
    episodes: int = 200  # episodes attempted, seeds seed .. seed + episodes - 1
    seed: int = 0
    noise_std: float = 0.0  # Gaussian noise on the expert's actions (recorded as executed)
    max_steps: int = 300
    keep_failed: bool = False
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self):
        check_demo_seeds(self.seed, self.episodes)
        if self.noise_std < 0:
            raise ValueError(f"noise_std={self.noise_std}; expected >= 0 ({self.noise_units})")
        if self.max_steps < 1:
            hint = f" ({self.reference_steps})" if self.reference_steps else ""
            raise ValueError(f"max_steps={self.max_steps}; expected >= 1{hint}")
        if not str(self.out) or Path(self.out).suffix != ".zarr":
            default = next(f.default for f in dataclasses.fields(self) if f.name == "out")
            raise ValueError(f"out={self.out!r}: {self.task_label} writes a zarr store; pass "
                             f"out=<path>.zarr, e.g. out={default}")


def run_expert_episodes(env: Any, config: ZarrCollectConfig, buffer: Any,
                        expert_factory: Callable[[Any, float], Any], *, desc: str,
                        is_success: Callable[[dict], bool],
                        episode_meta: Callable[[Any, dict], dict[str, Any]] | None = None,
                        record: Callable[[Any, int], tuple[dict[str, Any], dict]] | None = None,
                        write_every: int = 16) -> tuple[int, int]:
    """Drive a fresh expert (rng seeded by the env seed) through episodes seed .. seed + episodes - 1, keep
    the successful ones (or all with keep_failed) and append them to ``buffer`` in batches.

    ``record(expert, seed) -> (episode, last_info)`` plays one episode (default: ``record_episode`` on a
    dict-observation env, every observation key stored); ``episode_meta(expert, last_info)`` adds per-episode
    meta/ values beside ``seed`` and ``success``. Returns (attempted, succeeded)."""
    import numpy as np
    from tqdm import tqdm

    succeeded, kept = 0, 0
    pending: list[dict[str, Any]] = []
    pending_meta: list[dict[str, Any]] = []
    seeds = range(config.seed, config.seed + config.episodes)
    with tqdm(seeds, desc=desc, unit="ep", disable=not config.progress) as bar:
        for attempted, seed in enumerate(bar, start=1):
            expert = expert_factory(np.random.default_rng(seed), config.noise_std)
            if record is None:
                episode, info = record_episode(env, expert, seed, config.max_steps)
            else:
                episode, info = record(expert, seed)
            success = bool(is_success(info))
            succeeded += success
            if success or config.keep_failed:
                pending.append(episode)
                extra = {} if episode_meta is None else episode_meta(expert, info)
                pending_meta.append({"seed": seed, "success": success, **extra})
                kept += 1
            if len(pending) >= write_every or (attempted == config.episodes and pending):
                buffer.add_episodes(pending, pending_meta)
                pending, pending_meta = [], []
            bar.set_postfix(success=f"{succeeded / attempted:.1%}", kept=kept)
    return config.episodes, succeeded


def record_episode(env: Any, expert: Any, seed: int, max_steps: int) -> tuple[dict[str, Any], dict]:
    """One episode: ({key: [T, ...]} of pre-action observations and actions, the last step's info)."""
    import numpy as np

    obs, info = env.reset(seed=seed)
    expert.reset()
    steps: dict[str, list] = {key: [] for key in (*obs, "action")}
    for _ in range(max_steps):
        action = np.asarray(expert.act(env), dtype=np.float32).reshape(-1)
        for key, value in obs.items():
            steps[key].append(value)
        steps["action"].append(action)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return {key: np.stack(values) for key, values in steps.items()}, info


def store_attrs(config: ZarrCollectConfig, task: str, expert: str, expert_version: str,
                env_package: Path) -> dict[str, Any]:
    """The attributes every zarr store records: what collected it, from which seeds, with which code."""
    import datetime

    return {
        "task": task,
        "layout": "diffusion_policy",
        "expert": expert,
        "expert_version": expert_version,
        "seed": config.seed,  # first env seed; episode i used seed + i (also in meta/seed)
        "n_seeds": config.episodes,
        "noise_std": config.noise_std,
        "max_steps": config.max_steps,
        "keep_failed": config.keep_failed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "package_version": package_version(),
        "source_sha256": source_digest(env_package),
    }


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

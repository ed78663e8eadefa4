"""The files of a run folder ``<out_dir>/<run_name>/`` and the helpers that write them.

    config.yaml               the resolved config (rewritten by every start, resumes included)
    metrics.jsonl             one row per logged step (drifting_policy.common.metrics_log)
    train_state.safetensors   everything an exact resume needs (image_gen.training.state)
    model.safetensors         generator weights (EMA + raw) with their config, for image-gen-eval/-sample
    mae.safetensors, vae.safetensors, evaluator.safetensors   what the other objectives export
    samples/step_<N>.png      sample grids of the generator objectives
    checkpoints/step_<N>/     the export of step N, kept when keep_every divides N (time-to-score curves)

The run-folder rule (drifting_policy.common.run_folder, :func:`check_image_run_folder`), checked before
anything is written: a folder with a train_state.safetensors is continued only with ``resume=true`` and the
settings it was started with (the config stored in that file), except :data:`RESUME_MAY_CHANGE`; a folder
holding files but no train state is refused. A resumed run that already reached its budget is a no-op.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from torch import Tensor

from drifting_policy.common.entry import dataclass_defaults
from drifting_policy.common.run_folder import check_run_folder

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
STATE_FILE = "train_state.safetensors"
MODEL_FILE = "model.safetensors"

# Settings a resumed run may change (flattened config keys): the budget, the cadence of logs, grids and
# checkpoints, the progress bar and threads, where the folder lives, what the sample grids show, and how a
# step is executed (device, FSDP, the split of a step's micro-batches into ranks x grad_accum: the stored
# config records ranks x grad_accum, which must stay the same).
RESUME_MAY_CHANGE = (
    "max_steps", "epochs", "log_every", "sample_every", "checkpoint_every", "keep_every", "progress",
    "num_threads", "resume", "run_name", "out_dir", "grid_alpha", "grid_nfe", "grid_guidance", "device",
    "fsdp", "grad_accum",
)


def to_plain(value):
    """Dataclass dicts with tuples -> lists, so YAML stays plain (no python/tuple tags)."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def write_config(run_dir: Path, config) -> Path:
    """The config dataclass as ``run_dir/config.yaml``."""
    path = Path(run_dir) / CONFIG_FILE
    path.write_text(yaml.safe_dump(to_plain(dataclasses.asdict(config)), sort_keys=False))
    return path


def grid_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "samples" / f"step_{step:06d}.png"


def kept_dir(run_dir: Path, step: int) -> Path:
    """The folder of step ``step``'s kept export (keep_every)."""
    return Path(run_dir) / "checkpoints" / f"step_{step:06d}"


def save_grid(images: Tensor, path: Path, nrow: int) -> None:
    """Grid PNG of images [N, C, H, W] in [-1, 1]."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.float().clamp(-1, 1).add(1).div(2), str(path), nrow=nrow, padding=1, pad_value=1.0)


def stored_config(config, world_size: int = 1) -> dict:
    """The settings a run is checked against on resume (stored in its train state): the config as plain
    data plus ``micro_batches_per_step`` (ranks x grad_accum), and ``world_size`` when queues are per rank."""
    plain = to_plain(dataclasses.asdict(config))
    plain["micro_batches_per_step"] = world_size * config.grad_accum
    if getattr(config, "shard_queues", False):  # per-rank streams and queues: not resumable on other sizes
        plain["world_size"] = world_size
    return plain


def check_image_run_folder(config, world_size: int = 1) -> dict | None:
    """The run-folder rule for ``config.run_dir``, reading metadata only and writing nothing: None for a
    fresh run, else the stored train state's metadata (step, config, ...) of the run to resume.

    FileExistsError / ValueError (one line: the folder, what it holds, the fix) when the start is refused.
    """
    from image_gen.training.state import read_state_metadata

    run_dir = Path(config.run_dir)
    state = run_dir / STATE_FILE
    new = stored_config(config, world_size)
    meta, stored, describe = None, None, ""
    if state.exists():
        meta = read_state_metadata(state)  # one line naming the file if it is damaged or foreign
        stored = meta.get("config") or _config_yaml(run_dir)
        if stored is None:  # a state of the older trainers with no config.yaml beside it: nothing to compare
            stored = new
        if "micro_batches_per_step" not in stored:  # config.yaml or older states: no rank count recorded
            new = {k: v for k, v in new.items() if k not in ("micro_batches_per_step", "world_size")}
        describe = f"objective={stored.get('objective', '?')}, step {meta.get('step', '?')}"
        if stored.get("objective", config.objective) != config.objective:  # before the list of every field
            raise ValueError(f"{run_dir} holds a run ({describe}) of another objective (objective: "
                             f"{stored['objective']!r} -> {config.objective!r}); pick a new run_name (or "
                             "out_dir) for this one")
    resuming = check_run_folder(run_dir, state, config.resume, stored, new, RESUME_MAY_CHANGE, describe,
                                resume_key="resume", folder_key="run_name (or out_dir)",
                                defaults=dataclass_defaults(type(config)))  # settings newer than the run
    return meta if resuming else None


def _config_yaml(run_dir: Path) -> dict | None:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML ({str(error).splitlines()[0]}); restore it from the "
                         "run's settings or delete the run folder") from None
    return values if isinstance(values, dict) else None

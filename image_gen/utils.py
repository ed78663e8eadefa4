"""Run-folder plumbing of the image_gen entry points: metrics.jsonl, atomic checkpoints and resume state,
lr, grids."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from drifting_policy.checkpoint import atomic_write, flatten_optimizer, unflatten_optimizer
from drifting_policy.schedules import lr_factor


def pick_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast for the networks on GPU; plain float32 on CPU (the field casts to float32 itself)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def atomic_save_weights(tensors: dict[str, Tensor], path: Path, metadata: dict | None = None) -> None:
    """safetensors file written to a temporary name first, so a crash never leaves half a checkpoint."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    encoded = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=encoded))


def load_metadata(path: Path) -> dict:
    """The JSON metadata of a safetensors file, without reading its tensors."""
    with safe_open(str(path), framework="pt") as handle:
        return {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}


def load_weights(path: Path) -> tuple[dict[str, Tensor], dict]:
    return load_file(str(path)), load_metadata(path)


def with_prefix(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries named ``<prefix><name>``, renamed ``<name>`` (one module's part of a combined file)."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def save_train_state(state: tuple[dict[str, Tensor], dict], path: Path) -> None:
    """Resume state (named tensors, JSON-able metadata) as one safetensors file, written atomically: no
    pickle, so loading a checkpoint cannot run code."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state[0].items()}
    metadata = {"resume_state": json.dumps(state[1])}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_train_state(path: str | Path) -> tuple[dict[str, Tensor], dict]:
    """(tensors on CPU, metadata) of a file written by :func:`save_train_state`."""
    path = Path(path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "resume_state" not in metadata:
        raise ValueError(f"{path} is not a resume state (no 'resume_state' metadata); pass a "
                         "train_state.safetensors written by save_train_state")
    return load_file(str(path)), json.loads(metadata["resume_state"])


def optimizer_tensors(state_dict: dict) -> tuple[dict[str, Tensor], dict]:
    """An ``optimizer.state_dict()`` for :func:`save_train_state`: tensors named ``optimizer.<param
    index>.<name>`` and the JSON rest (param groups, scalar entries), via the policy checkpoint's optimizer
    flattening."""
    tensors: dict[str, Tensor] = {}
    meta = flatten_optimizer(state_dict, tensors)
    return tensors, meta


def optimizer_state_dict(tensors: dict[str, Tensor], meta: dict) -> dict:
    """Inverse of :func:`optimizer_tensors`, for ``optimizer.load_state_dict`` (which moves each entry to its
    parameter's device); ``tensors`` may hold other keys (only ``optimizer.*`` are read)."""
    return unflatten_optimizer(meta, with_prefix(tensors, "optimizer."))


def warmup_constant(step: int, warmup_steps: int) -> float:
    """LR multiplier: linear warm-up then constant (the paper's schedule)."""
    return lr_factor(step, 0.0, warmup_steps, "constant")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier: linear warm-up then a cosine over the remaining steps (the policy trainer's rule)."""
    total = max(total_steps, warmup_steps + 1)
    return lr_factor(step, step / total, warmup_steps, "cosine", warmup_end_progress=warmup_steps / total)


def save_grid(images: Tensor, path: Path, nrow: int) -> None:
    """Grid PNG of images [N, C, H, W] in [-1, 1]."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.float().clamp(-1, 1).add(1).div(2), str(path), nrow=nrow, padding=1, pad_value=1.0)


def dataclass_defaults(cls) -> dict:
    """Default values of a (nested) config dataclass as plain data, without running ``__post_init__``.

    Registered as a hydra base config, it makes every field overridable from the command line while the
    YAML files keep only what they change.
    """
    out = {}
    for spec in dataclasses.fields(cls):
        if spec.default_factory is not dataclasses.MISSING:
            value = spec.default_factory()
            value = dataclass_defaults(type(value)) if dataclasses.is_dataclass(value) else value
        else:
            value = spec.default
        out[spec.name] = list(value) if isinstance(value, tuple) else value
    return out


def register_base_config(name: str, cls) -> None:
    """Store ``cls``'s defaults in hydra's ConfigStore under ``name`` (entry points only)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=name, node=dataclass_defaults(cls))


def run_hydra_entry_point(config_cls, base_name: str, default_config: str, train_fn) -> None:
    """A console script's body: hydra config from ``configs/image_gen/<default_config>`` (over the dataclass's
    defaults, stored as ``base_name``) → ``config_cls`` → set the process's torch threads → ``train_fn``."""
    import hydra
    from omegaconf import OmegaConf

    register_base_config(base_name, config_cls)

    @hydra.main(config_path="../configs/image_gen", config_name=default_config, version_base=None)
    def run(cfg):
        config = config_cls(**OmegaConf.to_container(cfg, resolve=True))
        torch.set_num_threads(config.num_threads)  # process-wide: set here, never in the library
        train_fn(config)

    run()

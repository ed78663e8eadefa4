"""Run-folder plumbing of the image_gen entry points: metrics.jsonl, atomic checkpoints, EMA, lr, grids."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from drifting_policy.checkpoint import atomic_write
from drifting_policy.schedules import lr_factor


def pick_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast for the networks on GPU; plain float32 on CPU (the field casts to float32 itself)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def append_metrics(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(
            json.dumps({k: float(v) if not isinstance(v, str) else v for k, v in record.items()}) + "\n"
        )


def atomic_save_weights(tensors: dict[str, Tensor], path: Path, metadata: dict | None = None) -> None:
    """safetensors file written to a temporary name first, so a crash never leaves half a checkpoint."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    encoded = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=encoded))


def load_weights(path: Path) -> tuple[dict[str, Tensor], dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}
    return load_file(str(path)), metadata


def atomic_torch_save(obj, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


class EMA(nn.Module):
    """Exponential moving average of a model's parameters (buffers copied): ``ema.model`` samples."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay={decay}; expected a value in [0, 1)")
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Average with decay min(decay, (1 + step) / (10 + step)): early on the average must not be
        dominated by the random initial weights (short runs sampled pure noise from a 0.99 EMA)."""
        decay = min(self.decay, (1.0 + step) / (10.0 + step))
        for ema_param, param in zip(self.model.parameters(), model.parameters(), strict=True):
            ema_param.lerp_(param.detach(), 1.0 - decay)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_buffer.copy_(buffer)


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

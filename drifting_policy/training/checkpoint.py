"""Checkpoints: one safetensors file holding everything a run needs, written atomically.

Tensors (all in one file, prefixed):
  `policy.<name>`      policy state_dict (normaliser statistics included: the normaliser is a submodule)
  `ema.<name>`         EMA policy state_dict (what evaluation uses)
  `optimizer.<i>.<k>`  optimizer state tensors per parameter index
  `rng.torch`          torch CPU RNG state (uint8); `rng.cuda.<i>` per CUDA device when present
Metadata (strings): `format_version`, `policy_name`, `policy_options` (JSON), `shape_meta` (JSON), `config`
(the resolved run config, JSON), `train_state` (JSON: step, epoch, samples seen, clocks, optimizer
param_groups and non-tensor state).

Written to a temporary file in the same folder and moved into place with `os.replace`, so a reader (or a
crash) never sees half a checkpoint. A checkpoint alone is enough to rebuild and evaluate the policy
(`load_policy`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from drifting_policy.common.io import atomic_write, flatten_optimizer, read_raw_metadata, unflatten_optimizer

FORMAT_VERSION = 1
SUFFIX = ".safetensors"


@dataclass
class Checkpoint:
    """The contents of a checkpoint file (tensors on CPU)."""

    policy_name: str
    policy_options: dict[str, Any]
    shape_meta: dict[str, Any]
    policy_state: dict[str, torch.Tensor]
    ema_state: dict[str, torch.Tensor] | None = None
    optimizer_state: dict[str, Any] | None = None
    rng_state: dict[str, torch.Tensor] = field(default_factory=dict)
    train_state: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION


def resolve_path(path: str | Path) -> Path:
    """`runs/x/checkpoints/latest` -> `runs/x/checkpoints/latest.safetensors`; a run folder -> its latest."""
    path = Path(path)
    candidates = [path, path.with_name(path.name + SUFFIX), path / "checkpoints" / ("latest" + SUFFIX)]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no checkpoint at {path} (tried {', '.join(map(str, candidates))}); pass a "
                            f"checkpoint file, its name without {SUFFIX}, or a run folder with "
                            f"checkpoints/latest")


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write `ckpt` to `path` (suffix added if missing) atomically; returns the final path."""
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    _add(tensors, "policy.", ckpt.policy_state)
    if ckpt.ema_state is not None:
        _add(tensors, "ema.", ckpt.ema_state)
    optimizer_meta = None
    if ckpt.optimizer_state is not None:
        optimizer_meta = flatten_optimizer(ckpt.optimizer_state, tensors)
    _add(tensors, "rng.", ckpt.rng_state)
    metadata = {
        "format_version": str(ckpt.format_version),
        "policy_name": ckpt.policy_name,
        "policy_options": json.dumps(ckpt.policy_options),
        "shape_meta": json.dumps(ckpt.shape_meta),
        "config": json.dumps(ckpt.config),
        "train_state": json.dumps({**ckpt.train_state, "optimizer": optimizer_meta}),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _raw_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a policy checkpoint; ValueError naming the file if it is not one."""
    metadata = read_raw_metadata(path, "pass runs/<run>/checkpoints/latest or a step_<N> file")
    if "policy_name" not in metadata:
        raise ValueError(f"{path}: not a policy checkpoint (its metadata holds {sorted(metadata)[:6]}); "
                         "pass a checkpoint written by drifting-train (runs/<run>/checkpoints/latest)")
    return metadata


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = resolve_path(path)
    metadata = _raw_metadata(path)
    version = int(metadata.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format_version={version}, this code reads {FORMAT_VERSION}; "
                         f"re-save it with a matching drifting_policy version")
    try:
        tensors = load_file(str(path))
    except Exception as error:
        raise ValueError(f"{path}: the checkpoint's tensors cannot be read ({error}); the file is damaged: "
                         "use another checkpoint of the run (checkpoints/step_<N>)") from error
    groups: dict[str, dict[str, torch.Tensor]] = {"policy": {}, "ema": {}, "optimizer": {}, "rng": {}}
    for name, tensor in tensors.items():
        prefix, _, rest = name.partition(".")
        groups[prefix][rest] = tensor
    train_state = json.loads(metadata["train_state"])
    optimizer_meta = train_state.pop("optimizer")
    return Checkpoint(
        policy_name=metadata["policy_name"], policy_options=json.loads(metadata["policy_options"]),
        shape_meta=json.loads(metadata["shape_meta"]), policy_state=groups["policy"],
        ema_state=groups["ema"] or None,
        optimizer_state=unflatten_optimizer(optimizer_meta, groups["optimizer"]) if optimizer_meta else None,
        rng_state=groups["rng"], train_state=train_state, config=json.loads(metadata["config"]),
        format_version=version)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a checkpoint without loading its tensors."""
    metadata = _raw_metadata(resolve_path(path))
    return {key: (value if key in ("policy_name", "format_version") else json.loads(value))
            for key, value in metadata.items()}


def load_policy(path: str | Path, use_ema: bool = True, device: str | torch.device = "cpu",
                builder: Callable[[str, dict, dict], torch.nn.Module] | None = None) -> torch.nn.Module:
    """Rebuild the policy from a checkpoint alone (EMA weights by default), in eval mode."""
    ckpt = load_checkpoint(path)
    if builder is None:
        from drifting_policy.policy import build_policy as builder
    policy = builder(ckpt.policy_name, dict(ckpt.policy_options), shape_meta_from_json(ckpt.shape_meta))
    state = ckpt.ema_state if use_ema and ckpt.ema_state is not None else ckpt.policy_state
    policy.load_state_dict(state)
    return policy.to(device).eval()


def shape_meta_from_json(shape_meta: Mapping[str, Any]) -> dict[str, Any]:
    """JSON turns shape tuples into lists; give them back as tuples."""
    obs = {key: {**spec, "shape": tuple(spec["shape"])} for key, spec in shape_meta["obs"].items()}
    return {**shape_meta, "obs": obs, "action": {**shape_meta["action"],
                                                 "shape": tuple(shape_meta["action"]["shape"])}}


def capture_rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            state[f"cuda.{i}"] = cuda_state
    return state


def restore_rng_state(state: Mapping[str, torch.Tensor]) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    cuda = [state[f"cuda.{i}"] for i in range(len(state)) if f"cuda.{i}" in state]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def _add(tensors: dict[str, torch.Tensor], prefix: str, state: Mapping[str, torch.Tensor]) -> None:
    for name, tensor in state.items():
        # clone: safetensors refuses tensors that share memory (tied weights, views)
        tensors[prefix + name] = tensor.detach().to("cpu").contiguous().clone()

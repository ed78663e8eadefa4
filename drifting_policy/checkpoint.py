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
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

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


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Write `path` through `write(temporary_path)`, then rename: readers see the old file or the whole new
    one, never half of one, and an existing file survives a crash or an exception in `write`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as written:  # on disk before the rename, so the new file survives a crash
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = resolve_path(path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    version = int(metadata.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format_version={version}, this code reads {FORMAT_VERSION}; "
                         f"re-save it with a matching drifting_policy version")
    tensors = load_file(str(path))
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
    with safe_open(str(resolve_path(path)), framework="pt") as handle:
        metadata = handle.metadata() or {}
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


def flatten_optimizer(state_dict: Mapping[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Tensor entries of `optimizer.state_dict()["state"]` go to `tensors`; the rest is returned as JSON."""
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return {"param_groups": state_dict["param_groups"], "scalars": scalars,
            "indices": [int(i) for i in state_dict["state"]]}


def unflatten_optimizer(meta: dict[str, Any], tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Inverse of `flatten_optimizer`: a `load_state_dict`-ready state from JSON meta and tensors."""
    state: dict[int, dict[str, Any]] = {index: {} for index in meta["indices"]}
    for name, tensor in tensors.items():
        index, _, key = name.partition(".")
        state[int(index)][key] = tensor
    for index, values in meta["scalars"].items():
        state[int(index)].update(values)
    return {"state": state, "param_groups": meta["param_groups"]}

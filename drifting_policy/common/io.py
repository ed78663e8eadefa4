"""safetensors I/O shared by every trainer: atomic writes, JSON metadata, optimiser state without pickle.

A file is written to a temporary name in its folder, flushed to disk and renamed into place, so a reader (or a
crash) sees the old file or the whole new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from drifting_policy.common.faults import failpoint


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
        failpoint("checkpoint_write")  # crash tests: killed here, the old file must still be whole
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


REPLACED_SUFFIX = ".replaced"  # an overwritten folder, deleted once its replacement is in place


def replace_folder(new: str | Path, out: str | Path) -> Path:
    """Move the finished folder ``new`` to ``out`` (same filesystem), replacing what is there.

    Move aside, move in, then delete: a crash never loses both (the old folder survives at
    ``<out>.replaced`` until the new one is at ``out``); deleting first would leave neither for a moment.
    """
    new, out = Path(new), Path(out)
    replaced = out.with_name(out.name + REPLACED_SUFFIX)
    if out.exists():
        shutil.rmtree(replaced, ignore_errors=True)
        out.rename(replaced)
    new.rename(out)
    shutil.rmtree(replaced, ignore_errors=True)
    return out


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files of atomic writes that a killed process left in `folder`; returns them."""
    stale = sorted(Path(folder).glob(".*.tmp")) if Path(folder).is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def save_weights(tensors: Mapping[str, Tensor], path: str | Path,
                 metadata: Mapping[str, Any] | None = None) -> None:
    """Named tensors (moved to CPU) and JSON-encoded metadata as one safetensors file, written atomically."""
    # clone: safetensors refuses tensors that share memory (tied weights, views)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    encoded = {k: json.dumps(v) for k, v in (metadata or {}).items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=encoded))


def read_raw_metadata(path: str | Path, hint: str) -> dict[str, str]:
    """The string metadata of a safetensors file, tensors unread; a ValueError naming the file and ``hint``
    (what to pass instead) if it is damaged or of another format."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except Exception as error:  # safetensors raises its own error type for any damage
        raise ValueError(f"{path}: not a readable safetensors file ({error}); the file is damaged or of "
                         f"another format: {hint}") from error


def load_metadata(path: str | Path) -> dict:
    """The JSON metadata of a file written by :func:`save_weights`, without reading its tensors."""
    with safe_open(str(path), framework="pt") as handle:
        return {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}


def load_weights(path: str | Path) -> tuple[dict[str, Tensor], dict]:
    """(tensors on CPU, metadata) of a file written by :func:`save_weights`."""
    return load_file(str(path)), load_metadata(path)


def with_prefix(tensors: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries named ``<prefix><name>``, renamed ``<name>`` (one module's part of a combined file)."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def flatten_optimizer(state_dict: Mapping[str, Any], tensors: dict[str, Tensor]) -> dict[str, Any]:
    """Tensor entries of `optimizer.state_dict()["state"]` go to `tensors` (as ``optimizer.<index>.<key>``);
    the rest is returned as JSON."""
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return {"param_groups": state_dict["param_groups"], "scalars": scalars,
            "indices": [int(i) for i in state_dict["state"]]}


def unflatten_optimizer(meta: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer` (``tensors`` without the ``optimizer.`` prefix): a
    ``load_state_dict``-ready state."""
    state: dict[int, dict[str, Any]] = {index: {} for index in meta["indices"]}
    for name, tensor in tensors.items():
        index, _, key = name.partition(".")
        state[int(index)][key] = tensor
    for index, values in meta["scalars"].items():
        state[int(index)].update(values)
    return {"state": state, "param_groups": meta["param_groups"]}

"""Per-key affine normalisation to [-1, 1], as Diffusion Policy's LinearNormalizer in "limits" mode.

Low-dim keys: per-dimension min/max over the data map to [-1, 1]; a dimension whose range is below
RANGE_EPS is only shifted (to 0), never scaled up. Dimensions named in ``identity_dims`` pass through
unchanged (scale 1, offset 0), as Diffusion Policy leaves the 6-D rotation of absolute robomimic actions:
they are unit-vector entries already. Image keys (uint8 [0, 255]): a fixed map to [-1, 1],
``x * 2 / 255 - 1``, whatever the data. The statistics are registered buffers, so they travel in the
owning policy's ``state_dict`` (and its safetensors checkpoint); a fresh, unfitted Normalizer accepts
such a state dict and recreates its keys. Identity dimensions are stored as scale 1 and offset 0, so they
need no extra buffers and old checkpoints load unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

RANGE_EPS = 1e-4  # DP's range_eps: below this a dimension is treated as constant
OUTPUT_MIN, OUTPUT_MAX = -1.0, 1.0
IMAGE_MAX = 255.0  # uint8 images


class _KeyStats(nn.Module):
    """y = x * scale + offset; buffers of the per-step shape ([] for images)."""

    def __init__(self, scale: torch.Tensor, offset: torch.Tensor, input_min: torch.Tensor,
                 input_max: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale.float().contiguous())
        self.register_buffer("offset", offset.float().contiguous())
        self.register_buffer("input_min", input_min.float().contiguous())
        self.register_buffer("input_max", input_max.float().contiguous())

    @classmethod
    def empty(cls, shape: torch.Size) -> _KeyStats:
        zeros = torch.zeros(shape)
        return cls(zeros, zeros.clone(), zeros.clone(), zeros.clone())


def _limits_stats(values: torch.Tensor, identity: Sequence[int] = ()) -> _KeyStats:
    """Stats mapping each dimension of values [N, ...] from [min, max] to [-1, 1], except the last-axis
    indices in ``identity``, which map to themselves."""
    input_min, input_max = values.amin(dim=0), values.amax(dim=0)
    input_range = input_max - input_min
    constant = input_range < RANGE_EPS
    scale = (OUTPUT_MAX - OUTPUT_MIN) / torch.where(constant, torch.ones_like(input_range), input_range)
    scale = torch.where(constant, torch.ones_like(scale), scale)
    offset = OUTPUT_MIN - scale * input_min
    offset = torch.where(constant, (OUTPUT_MAX + OUTPUT_MIN) / 2 - input_min, offset)
    scale[..., list(identity)] = 1.0
    offset[..., list(identity)] = 0.0
    return _KeyStats(scale, offset, input_min, input_max)


def _image_stats() -> _KeyStats:
    scale = torch.tensor((OUTPUT_MAX - OUTPUT_MIN) / IMAGE_MAX)
    return _KeyStats(scale, torch.tensor(OUTPUT_MIN), torch.tensor(0.0), torch.tensor(IMAGE_MAX))


class Normalizer(nn.Module):
    """``fit`` on {key: [N, ...]} arrays, then ``normalize(key, x)`` / ``unnormalize(key, x)`` for
    tensors x [..., *per-step shape] of any leading shape (float32 out)."""

    def __init__(self) -> None:
        super().__init__()
        self.params = nn.ModuleDict()

    def fit(self, data: Mapping[str, np.ndarray | torch.Tensor], image_keys: Iterable[str] = (),
            identity_dims: Mapping[str, Sequence[int]] | None = None) -> Normalizer:
        """Fit min/max statistics for every key of ``data`` ([N, ...] arrays, N >= 1).

        uint8 arrays in ``data`` and every name in ``image_keys`` (no data needed) get the fixed
        image map. ``identity_dims`` {key: last-axis indices} are left unnormalised (e.g. {"action":
        range(3, 9)} for the 6-D rotation of absolute robomimic actions). Refitting a key replaces its
        statistics. Returns self.
        """
        identity_dims = dict(identity_dims or {})
        for key, dims in identity_dims.items():
            width = np.shape(data[key])[-1] if key in data and np.ndim(data[key]) > 1 else None
            if key not in data or width is None or any(not 0 <= int(d) < width for d in dims):
                raise ValueError(f"Normalizer.fit: identity_dims[{key!r}]={list(dims)} must index the last "
                                 f"axis of a low-dim key of data (keys {sorted(data)}, last axis {width})")
        for key, values in data.items():
            tensor = torch.as_tensor(np.asarray(values) if not torch.is_tensor(values) else values)
            if tensor.dtype == torch.uint8:
                self._set(key, _image_stats())
                continue
            if tensor.ndim < 1 or tensor.shape[0] < 1:
                raise ValueError(f"Normalizer.fit: data[{key!r}] must be [N, ...] with N >= 1, "
                                 f"got {tuple(tensor.shape)}")
            tensor = tensor.detach().to("cpu", torch.float64)  # float64: exact min/max, then float32 buffers
            if not torch.isfinite(tensor).all():
                raise ValueError(f"Normalizer.fit: data[{key!r}] contains NaN/inf; clean the dataset first")
            self._set(key, _limits_stats(tensor, [int(d) for d in identity_dims.get(key, ())]))
        for key in image_keys:
            self._set(key, _image_stats())
        return self

    def _set(self, key: str, stats: _KeyStats) -> None:
        if not key or "." in key or (hasattr(self.params, key) and key not in self.params):
            raise ValueError(f"Normalizer: key {key!r} cannot name a module (empty, contains '.', or is a "
                             "ModuleDict attribute); rename it")
        self.params[key] = stats

    def keys(self) -> list[str]:
        return list(self.params.keys())

    def __contains__(self, key: str) -> bool:
        return key in self.params

    @property
    def is_fitted(self) -> bool:
        return len(self.params) > 0

    def _stats(self, key: str, x: torch.Tensor) -> _KeyStats:
        if not self.is_fitted:
            raise RuntimeError("Normalizer used before fit(): call fit(dataset.normalizer_data()) or load a "
                               "state_dict that holds the statistics")
        if key not in self.params:
            raise KeyError(f"Normalizer has no statistics for key {key!r}; fitted keys: {self.keys()}")
        stats: _KeyStats = self.params[key]
        shape = tuple(stats.scale.shape)
        if shape and tuple(x.shape[x.ndim - len(shape):]) != shape:
            raise ValueError(f"Normalizer[{key!r}]: expected [..., {', '.join(map(str, shape))}], "
                             f"got {tuple(x.shape)}")
        return stats

    def normalize(self, key: str, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Raw units -> [-1, 1]; x [..., *shape], returns float32 of the same shape."""
        x = _as_tensor(x)
        stats = self._stats(key, x)
        return x.to(stats.scale) * stats.scale + stats.offset

    def unnormalize(self, key: str, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """[-1, 1] -> raw units; inverse of ``normalize``."""
        x = _as_tensor(x)
        stats = self._stats(key, x)
        return (x.to(stats.scale) - stats.offset) / stats.scale

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        # An unfitted Normalizer (e.g. inside a freshly built policy) learns its keys from the checkpoint.
        head = prefix + "params."
        names = {name[len(head):].split(".")[0] for name in state_dict if name.startswith(head)}
        for key in sorted(names - set(self.params.keys())):
            scale = state_dict.get(f"{head}{key}.scale")
            if scale is not None:
                self._set(key, _KeyStats.empty(scale.shape))
        super()._load_from_state_dict(state_dict, prefix, *args)


def _as_tensor(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    return x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))

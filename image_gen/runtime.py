"""Where image_gen's tensors run: the device a config names, and bf16 autocast on GPUs."""

from __future__ import annotations

import torch


def pick_device(name: str, dist_info=None) -> torch.device:
    """'auto' -> this rank's GPU under torchrun (``dist_info``), else cuda when available, else cpu; any other
    name as torch spells it ('cpu', 'cuda', 'cuda:1')."""
    if name != "auto":
        return torch.device(name)
    if dist_info is not None and dist_info.distributed:
        return dist_info.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast for the networks on GPU; plain float32 on CPU (the field casts to float32 itself)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")

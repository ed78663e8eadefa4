"""Frozen ConvNeXt-V2 feature encoder for pixel generators (paper Table 8/9: pixel-MAE + ConvNeXt-V2).

The architecture comes from timm (``convnextv2_*``; optional extra ``pip install 'drifting-policy[convnext]'``
or ``pip install 'timm>=1.0'``), the weights from a local file: no download, these machines are offline. A
timm state dict in ``.safetensors`` or ``.pt`` loads directly (e.g. timm's
``convnextv2_base.fcmae_ft_in22k_in1k`` file); the official code's ``facebook/convnextv2-base-22k-224`` is a
*transformers* checkpoint whose keys differ and must be converted to timm's names first.

``ConvNeXtV2Features(x)`` returns the MAE encoder's layout, one list per stage of maps [n, C, h, w] (every
``every``-th block output, the stage output last), so ``image_gen.objectives.features.extract_features``
turns it into the same feature sets; :class:`StackedEncoders` concatenates the stage lists of several encoders
(MAE + ConvNeXt).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TIMM_MISSING = (
    "ConvNeXt-V2 features need timm (architecture only): pip install 'drifting-policy[convnext]' "
    "or pip install 'timm>=1.0'"
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the normalisation every timm ConvNeXt-V2 was trained with
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A timm state dict from ``.safetensors`` or a torch file (a {'model': ...} wrapper is unwrapped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ConvNeXt-V2 weights {path} not found; give a local timm state-dict file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("model", state) if isinstance(state, dict) else state


class ConvNeXtV2Features(nn.Module):
    """Frozen timm ConvNeXt-V2: images [n, 1 or 3, H, W] in [-1, 1] -> list (stage) of lists of maps.

    Gray images are repeated to 3 channels; inputs are resized to ``input_size`` (the resolution the weights
    were trained at) and normalised with the ImageNet mean/std.
    """

    def __init__(
        self,
        name: str = "convnextv2_base",
        weights_path: str | Path | None = None,
        input_size: int | None = 224,
        every: int = 2,
    ):
        super().__init__()
        try:
            import timm
        except ImportError as error:
            raise ImportError(TIMM_MISSING) from error
        if not name.startswith("convnextv2_"):
            raise ValueError(
                f"name={name!r}; expected a timm convnextv2_* model ({timm.list_models('convnextv2*')})"
            )
        if every < 1:
            raise ValueError(f"every={every}; expected >= 1 (keep every n-th block output)")
        self.model = timm.create_model(name, pretrained=False, num_classes=0)
        if weights_path is not None:
            state = {k: v for k, v in load_state_dict(weights_path).items() if not k.startswith("head.fc.")}
            try:
                missing, unexpected = self.model.load_state_dict(state, strict=False)
            except RuntimeError as error:  # shape mismatches: another convnextv2 size
                missing, unexpected = [str(error).splitlines()[1].strip()], []
            missing = [k for k in missing if not k.startswith("head.")]
            if missing or unexpected:
                raise ValueError(
                    f"{weights_path} does not fit timm {name}: missing {missing[:5]}, unexpected "
                    f"{unexpected[:5]} (a transformers checkpoint needs converting to timm names)"
                )
        self.input_size, self.every = input_size, every
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> ConvNeXtV2Features:
        return super().train(False)  # frozen: stays in eval mode (no dropout / drop-path)

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # [n, 3, H, W]
        if self.input_size and x.shape[-1] != self.input_size:
            size = (self.input_size, self.input_size)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        x = ((x + 1.0) / 2.0 - self.mean) / self.std
        x = self.model.stem(x)  # [n, C0, H/4, W/4]
        stages = []
        for stage in self.model.stages:
            x = stage.downsample(x)
            maps = []
            for index, block in enumerate(stage.blocks):
                x = block(x)
                if (index + 1) % self.every == 0 or index == len(stage.blocks) - 1:
                    maps.append(x)  # [n, C_s, h_s, w_s]
            stages.append(maps)
        return stages


class StackedEncoders(nn.Module):
    """Several frozen encoders as one: their stage lists concatenated (names s0.. continue across them)."""

    def __init__(self, *encoders: nn.Module):
        super().__init__()
        if not encoders:
            raise ValueError("StackedEncoders needs at least one encoder")
        self.encoders = nn.ModuleList(encoders)

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        return [maps for encoder in self.encoders for maps in encoder(x)]

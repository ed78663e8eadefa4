"""Observation encoder: normalised observation dict -> one conditioning vector per sample.

Low-dim keys are flattened and concatenated as they are; each rgb key has its own ResNet-18 (untrained,
BatchNorm -> GroupNorm) with spatial-softmax pooling, as Diffusion Policy's robomimic encoder. Images are
randomly cropped in training and centre-cropped in eval (``module.training``); low-dim values optionally get
Gaussian noise in training (``low_dim_noise``, in normalised units), never in eval.

Inputs are normalised (the policy's normaliser ran first): low-dim float [B, To, *shape], rgb float in
[-1, 1] [B, To, H, W, 3] (raw HWC layout). Output [B, To * feature_dim], observation steps concatenated.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torchvision
from torch import Tensor, nn

OBS_TYPES = ("low_dim", "rgb")
# Diffusion Policy's GroupNorm swap: one group per 16 channels.
CHANNELS_PER_GROUP = 16
# ResNet-18 halves the resolution 5 times (ceil); a crop under 33 px leaves a 1x1 map, where the spatial
# softmax is a constant and the image is ignored.
MIN_CROP = 33


class SpatialSoftmax(nn.Module):
    """[N, C, H, W] -> [N, 2K]: expected (x, y) in [-1, 1] of K learned keypoint heat maps."""

    def __init__(self, in_channels: int, num_keypoints: int):
        super().__init__()
        self.keypoints = nn.Conv2d(in_channels, num_keypoints, kernel_size=1)

    def forward(self, features: Tensor) -> Tensor:
        heat = self.keypoints(features)  # [N, K, H, W]
        n, k, h, w = heat.shape
        attention = heat.flatten(2).softmax(dim=-1)  # [N, K, H * W]
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=heat.device),
                                torch.linspace(-1, 1, w, device=heat.device), indexing="ij")
        grid = torch.stack([xs.flatten(), ys.flatten()], dim=-1).to(attention.dtype)  # [H * W, 2]
        return (attention @ grid).reshape(n, 2 * k)  # [N, 2K]


class ImageEncoder(nn.Module):
    """One rgb key: crop -> ResNet-18-GN trunk -> spatial softmax -> Linear(feature_dim)."""

    def __init__(self, crop_shape: tuple[int, int], feature_dim: int, num_keypoints: int):
        super().__init__()
        self.crop_shape = crop_shape
        resnet = torchvision.models.resnet18(
            weights=None, norm_layer=lambda channels: nn.GroupNorm(channels // CHANNELS_PER_GROUP, channels))
        self.trunk = nn.Sequential(*list(resnet.children())[:-2])  # drop avgpool and fc: [N, 512, h, w]
        self.pool = SpatialSoftmax(512, num_keypoints)
        self.project = nn.Linear(2 * num_keypoints, feature_dim)

    def crop(self, images: Tensor, generator: torch.Generator | None) -> Tensor:
        """[N, H, W, C] -> [N, h, w, C]: a random window per image in training, the centre in eval."""
        n, height, width, _ = images.shape
        crop_h, crop_w = self.crop_shape
        if (crop_h, crop_w) == (height, width):
            return images
        if not self.training:
            top, left = (height - crop_h) // 2, (width - crop_w) // 2
            return images[:, top:top + crop_h, left:left + crop_w]
        device = images.device
        top = torch.randint(0, height - crop_h + 1, (n,), generator=generator,
                            device=generator.device if generator is not None else device).to(device)
        left = torch.randint(0, width - crop_w + 1, (n,), generator=generator,
                             device=generator.device if generator is not None else device).to(device)
        rows = top[:, None] + torch.arange(crop_h, device=device)  # [N, h]
        cols = left[:, None] + torch.arange(crop_w, device=device)  # [N, w]
        index = torch.arange(n, device=device)[:, None, None]
        return images[index, rows[:, :, None], cols[:, None, :]]  # [N, h, w, C]

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """[N, H, W, 3] in [-1, 1] -> [N, feature_dim]."""
        x = self.crop(images, generator).permute(0, 3, 1, 2).contiguous()  # [N, 3, h, w]
        return self.project(self.pool(self.trunk(x)))


class ObsEncoder(nn.Module):
    """Encode a shape_meta's observations (any mix of low-dim and rgb keys).

    Args:
        shape_meta: {"obs": {key: {"shape": tuple, "type": "low_dim" | "rgb"}}, ...}; rgb shapes are HWC.
        obs_horizon: To, observation steps per sample.
        image_feature_dim: features per rgb key and step.
        crop_shape: (h, w) crop of every rgb key, or None for no crop.
        num_keypoints: spatial-softmax keypoints per rgb key.
        low_dim_noise: std of the Gaussian noise added to every normalised low-dim value in training mode
            (an augmentation against memorising a few hundred demonstrations); 0 disables it.

    Keys are encoded in sorted order (rgb first, then low-dim) so the layout does not depend on dict order.
    """

    def __init__(self, shape_meta: Mapping, obs_horizon: int, image_feature_dim: int = 64,
                 crop_shape: tuple[int, int] | None = None, num_keypoints: int = 32,
                 low_dim_noise: float = 0.0):
        super().__init__()
        if not low_dim_noise >= 0:
            raise ValueError(f"low_dim_noise={low_dim_noise!r}: expected a std >= 0 in normalised units "
                             "(0 disables the augmentation; e.g. 0.01)")
        self.obs_horizon = obs_horizon
        self.low_dim_noise = float(low_dim_noise)
        obs_meta = shape_meta.get("obs") if isinstance(shape_meta, Mapping) else None
        if not obs_meta:
            raise ValueError("shape_meta['obs'] is missing or empty; expected {key: {'shape': ..., 'type': "
                             "'low_dim' | 'rgb'}}")
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.rgb_keys: list[str] = []
        self.low_dim_keys: list[str] = []
        for key in sorted(obs_meta):
            shape = tuple(int(s) for s in obs_meta[key]["shape"])
            obs_type = obs_meta[key].get("type", "low_dim")
            if obs_type not in OBS_TYPES:
                raise ValueError(f"shape_meta['obs']['{key}']['type']={obs_type!r}; expected one of "
                                 f"{OBS_TYPES}")
            if obs_type == "rgb" and (len(shape) != 3 or shape[2] != 3):
                raise ValueError(f"rgb key '{key}' has shape {shape}; expected raw HWC (H, W, 3)")
            self.shapes[key] = shape
            (self.rgb_keys if obs_type == "rgb" else self.low_dim_keys).append(key)
        self.image_encoders = nn.ModuleDict()
        for key in self.rgb_keys:
            height, width, _ = self.shapes[key]
            crop = (height, width) if crop_shape is None else tuple(crop_shape)
            if crop[0] > height or crop[1] > width or min(crop) < MIN_CROP:
                raise ValueError(f"crop_shape={crop} does not fit rgb key '{key}' of shape "
                                 f"{self.shapes[key]}; set crop_shape within [{MIN_CROP}, (H, W)] (smaller "
                                 "crops leave a 1x1 ResNet map and a constant spatial softmax), e.g. 84x84 "
                                 "for 96x96 images")
            self.image_encoders[key] = ImageEncoder(crop, image_feature_dim, num_keypoints)
        low_dim = sum(int(torch.tensor(self.shapes[key]).prod()) for key in self.low_dim_keys)
        self.feature_dim = image_feature_dim * len(self.rgb_keys) + low_dim  # per observation step

    @property
    def output_dim(self) -> int:
        """Width of the conditioning vector: feature_dim x obs_horizon."""
        return self.feature_dim * self.obs_horizon

    def check(self, obs: Mapping[str, Tensor]) -> int:
        """Raise if a key is missing or a shape is not [B, obs_horizon, *shape]; return B.

        Extra keys are ignored (an env may provide more than the policy uses)."""
        batch = None
        for key, shape in self.shapes.items():
            if key not in obs:
                raise ValueError(f"observation key '{key}' missing; got keys {sorted(obs)}, expected "
                                 f"{sorted(self.shapes)} (shape_meta['obs'])")
            got = tuple(obs[key].shape)
            if got[1:] != (self.obs_horizon, *shape) or (batch is not None and got[0] != batch):
                expected = f"[{batch if batch is not None else 'B'}, {self.obs_horizon}, " \
                           f"{', '.join(map(str, shape))}]"
                raise ValueError(f"observation '{key}' has shape {list(got)}; expected {expected} "
                                 "(obs_horizon steps of the shape in shape_meta)")
            batch = got[0]
        return batch

    def forward(self, obs: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """Normalised obs {key: [B, To, ...]} -> [B, To * feature_dim]; ``generator`` drives random crops."""
        batch = self.check(obs)
        features = []
        for key in self.rgb_keys:
            images = obs[key].flatten(0, 1)  # [B * To, H, W, 3]
            features.append(self.image_encoders[key](images, generator).view(batch, self.obs_horizon, -1))
        for key in self.low_dim_keys:
            values = obs[key].reshape(batch, self.obs_horizon, -1).float()  # [B, To, prod(shape)]
            if self.training and self.low_dim_noise > 0:
                noise = torch.randn(values.shape, generator=generator,
                                    device=generator.device if generator is not None else values.device)
                values = values + self.low_dim_noise * noise.to(values.device)
            features.append(values)
        return torch.cat(features, dim=-1).reshape(batch, -1)  # [B, To * feature_dim]

"""What every policy shares: the config fields, the obs encoder, the backbone and the normaliser plumbing.

A policy takes raw observations {key: [B, obs_horizon, ...]} and raw action chunks [B, prediction_horizon,
action_dim], normalises them with its own :class:`Normalizer` (a submodule, so its statistics are in the
state_dict), and predicts raw action chunks. Subclasses implement ``compute_loss`` and ``predict_action``.
Shape legend: B observations, G samples per observation, To = obs_horizon, T = prediction_horizon,
A = action_dim, D = T * A (a flattened chunk), E = obs conditioning width.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from drifting_policy.model import ConditionalUnet1D, MLPBackbone, ObsEncoder
from drifting_policy.model.mlp import CONDITIONINGS
from drifting_policy.policy.normalizer import Normalizer

ACTION_KEY = "action"
BACKBONES = ("unet", "mlp")


def config_error(field: str, expected: str, got: Any, fix: str) -> ValueError:
    return ValueError(f"{field}={got!r}: expected {expected}; {fix}")


@dataclasses.dataclass
class PolicyConfig:
    """Fields shared by every policy. Defaults are Diffusion Policy's Push-T low-dim UNet (a GPU size);
    configs pick CPU sizes (down_dims (64, 128, 256) or backbone='mlp')."""

    obs_horizon: int = 2
    action_horizon: int = 8  # executed actions per chunk (the runner slices them)
    prediction_horizon: int = 16
    backbone: str = "unet"  # "unet" | "mlp"
    # ConditionalUnet1D
    down_dims: tuple[int, ...] = (256, 512, 1024)
    kernel_size: int = 5
    n_groups: int = 8
    film_scale: bool = True  # FiLM scale and bias (Diffusion Policy's cond_predict_scale)
    step_embed_dim: int = 256  # used only by policies that take a step (diffusion)
    # MLPBackbone
    mlp_width: int = 512
    mlp_depth: int = 3
    mlp_conditioning: str = "film"  # "film" | "concat"
    # ObsEncoder (rgb keys only)
    image_feature_dim: int = 64
    crop_shape: tuple[int, int] | None = None  # e.g. (84, 84) for 96x96 Push-T images
    num_keypoints: int = 32
    # std of Gaussian noise on normalised low-dim observations in training (augmentation); 0: none
    obs_noise: float = 0.0

    def __post_init__(self) -> None:
        self.down_dims = tuple(int(d) for d in self.down_dims)
        if self.crop_shape is not None:
            self.crop_shape = tuple(int(s) for s in self.crop_shape)
        for name in ("obs_horizon", "action_horizon", "prediction_horizon", "kernel_size", "n_groups",
                     "mlp_width", "mlp_depth", "image_feature_dim", "num_keypoints"):
            if int(getattr(self, name)) < 1:
                raise config_error(name, "a positive integer", getattr(self, name), f"set {name} >= 1")
        if self.obs_horizon - 1 + self.action_horizon > self.prediction_horizon:
            raise config_error("action_horizon", f"<= prediction_horizon - obs_horizon + 1 = "
                               f"{self.prediction_horizon - self.obs_horizon + 1} (executed actions start at "
                               "index obs_horizon - 1 of the chunk)", self.action_horizon,
                               "lower action_horizon or raise prediction_horizon")
        if self.backbone not in BACKBONES:
            raise config_error("backbone", f"one of {BACKBONES}", self.backbone, "pick a known backbone")
        if self.mlp_conditioning not in CONDITIONINGS:
            raise config_error("mlp_conditioning", f"one of {CONDITIONINGS}", self.mlp_conditioning,
                               "pick 'film' or 'concat'")
        if self.step_embed_dim != 0 and (self.step_embed_dim < 4 or self.step_embed_dim % 2):
            raise config_error("step_embed_dim", "0 or an even integer >= 4", self.step_embed_dim,
                               "e.g. 128 or 256")
        if self.backbone == "unet":
            self._check_unet()
        if not self.obs_noise >= 0:
            raise config_error("obs_noise", "a std >= 0 (normalised units)", self.obs_noise,
                               "use 0 (no augmentation) or e.g. 0.01")
        if self.crop_shape is not None and len(self.crop_shape) != 2:
            raise config_error("crop_shape", "(height, width) or None", self.crop_shape, "e.g. (84, 84)")

    def _check_unet(self) -> None:
        if not self.down_dims or any(d < 1 or d % self.n_groups for d in self.down_dims):
            raise config_error("down_dims", f"non-empty, each a multiple of n_groups={self.n_groups}",
                               self.down_dims, "e.g. (64, 128, 256)")
        factor = 2 ** (len(self.down_dims) - 1)
        if self.prediction_horizon % factor:
            raise config_error("prediction_horizon", f"a multiple of 2**(len(down_dims)-1) = {factor} for "
                               "the UNet", self.prediction_horizon, "use 16 or fewer down_dims")
        if self.kernel_size % 2 == 0:
            raise config_error("kernel_size", "odd (length-preserving convs)", self.kernel_size, "use 5")


class BasePolicy(nn.Module, abc.ABC):
    """Obs encoder + backbone + normaliser; subclasses add the head (loss and sampler).

    Subclasses set ``name``, ``config_class`` and ``uses_timestep`` (whether the backbone gets a
    diffusion-step input). Usable without hydra: ``DriftingPolicy(DriftingConfig(...), shape_meta)``.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    uses_timestep: ClassVar[bool]
    zero_init_output: ClassVar[bool]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # ABCMeta fills __abstractmethods__ only after this hook, so look at the methods themselves
        abstract = any(getattr(getattr(cls, method), "__isabstractmethod__", False)
                       for method in ("compute_loss", "predict_action"))
        if not abstract:
            for attr in ("name", "config_class", "uses_timestep", "zero_init_output"):
                if not hasattr(cls, attr):
                    raise TypeError(f"policy class {cls.__name__} must define class attribute '{attr}'")

    def __init__(self, config: PolicyConfig, shape_meta: Mapping):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}; got "
                            f"{type(config).__name__}")
        self.config = config
        self.shape_meta = copy.deepcopy(dict(shape_meta))
        action_shape = tuple(self.shape_meta.get("action", {}).get("shape", ()))
        if len(action_shape) != 1 or action_shape[0] < 1:
            raise ValueError(f"shape_meta['action']['shape']={action_shape}; expected (action_dim,)")
        self.action_dim = int(action_shape[0])
        self.normalizer = Normalizer()
        self.obs_encoder = ObsEncoder(self.shape_meta, config.obs_horizon, config.image_feature_dim,
                                      config.crop_shape, config.num_keypoints, config.obs_noise)
        self.backbone = self._build_backbone()

    def extra_cond_dim(self) -> int:
        """Conditioning values a head appends to the observation features (e.g. a noise vector)."""
        return 0

    def _build_backbone(self) -> nn.Module:
        config = self.config
        step_dim = config.step_embed_dim if self.uses_timestep else 0
        cond_dim = self.obs_encoder.output_dim + self.extra_cond_dim()
        if config.backbone == "unet":
            return ConditionalUnet1D(self.action_dim, cond_dim, config.down_dims,
                                     config.kernel_size, config.n_groups, step_dim, config.film_scale,
                                     self.zero_init_output)
        return MLPBackbone(self.action_dim, config.prediction_horizon, cond_dim,
                           config.mlp_width, config.mlp_depth, config.mlp_conditioning, step_dim,
                           self.zero_init_output)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def chunk_shape(self) -> tuple[int, int]:
        """(T, A): one predicted action chunk."""
        return self.config.prediction_horizon, self.action_dim

    # ---- normalisation -------------------------------------------------------------------------------
    def set_normalizer(self, normalizer: Normalizer) -> None:
        """Copy fitted statistics (every obs key and 'action') into ``self.normalizer``."""
        missing = [key for key in [*self.obs_encoder.shapes, ACTION_KEY] if key not in normalizer]
        if missing:
            raise ValueError(f"normalizer lacks statistics for {missing}; fit it on the dataset's obs keys "
                             f"and '{ACTION_KEY}' (has {normalizer.keys()})")
        fresh = Normalizer()
        fresh.load_state_dict(normalizer.state_dict())
        self.normalizer = fresh.to(self.device)

    def normalize_obs(self, obs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Raw {key: [B, To, ...]} -> normalised float tensors on the policy's device (extra keys dropped)."""
        self.obs_encoder.check(obs)
        device = self.device
        return {key: self.normalizer.normalize(key, torch.as_tensor(obs[key]).to(device))
                for key in self.obs_encoder.shapes}

    def encode_obs(self, obs: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """Raw obs {key: [B, To, ...]} -> conditioning [B, E]: normalised, encoded once per observation."""
        return self.obs_encoder(self.normalize_obs(obs), generator)

    def normalized_action(self, batch: Mapping[str, Any], batch_size: int) -> Tensor:
        """batch['action'] [B, T, A] raw -> normalised, with a shape check."""
        if ACTION_KEY not in batch:
            raise ValueError(f"batch has no '{ACTION_KEY}' key; got {sorted(batch)}")
        action = torch.as_tensor(batch[ACTION_KEY]).to(self.device)
        expected = (batch_size, *self.chunk_shape)
        if tuple(action.shape) != expected:
            raise ValueError(f"batch['{ACTION_KEY}'] has shape {list(action.shape)}; expected "
                             f"{list(expected)} [B, prediction_horizon, action_dim]")
        return self.normalizer.normalize(ACTION_KEY, action)

    def unnormalize_action(self, chunk: Tensor) -> Tensor:
        """Normalised [B, T, A] -> raw units; clipped to [-1, 1] first when config.clip_sample."""
        if getattr(self.config, "clip_sample", False):
            chunk = chunk.clamp(-1.0, 1.0)
        return self.normalizer.unnormalize(ACTION_KEY, chunk)

    def sample_noise(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        """Standard normal noise of ``shape`` on the policy's device, drawn from ``generator`` when given."""
        noise_device = generator.device if generator is not None else self.device
        return torch.randn(shape, generator=generator, device=noise_device).to(self.device)

    # ---- the interface -------------------------------------------------------------------------------
    @abc.abstractmethod
    def compute_loss(self, batch: Mapping[str, Any], generator: torch.Generator | None = None
                     ) -> tuple[Tensor, dict[str, Tensor]]:
        """batch {'obs': {key: [B, To, ...]}, 'action': [B, T, A]} raw -> (loss [], flat metrics dict)."""

    @abc.abstractmethod
    def predict_action(self, obs: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """Raw obs {key: [B, To, ...]} -> raw action chunks [B, prediction_horizon, action_dim]."""

    def reset(self) -> None:
        """Clear per-episode state (none: every chunk is predicted from its observations alone)."""

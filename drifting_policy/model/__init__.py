"""Networks shared by every policy: the temporal UNet, the MLP head and the observation encoder."""

from drifting_policy.model.mlp import MLPBackbone
from drifting_policy.model.obs_encoder import ObsEncoder
from drifting_policy.model.unet1d import ConditionalUnet1D

__all__ = ["ConditionalUnet1D", "MLPBackbone", "ObsEncoder"]

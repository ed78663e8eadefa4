"""Multi-scale feature sets of the drift loss (paper Sec. A.5) and the per-feature drift loss over them.

From every feature map [n, C, H, W] of the frozen encoder (each stage's output and every 2nd block):
    <map>.loc        each location's C-vector                      [n, H*W, C]
    <map>.mean/.std  global mean and std over locations            [n, 1, C]
    <map>.p2m/.p2s   mean and std over 2x2 patches                 [n, H*W/4, C]    (when H >= 4)
    <map>.p4m/.p4s   mean and std over 4x4 patches                 [n, H*W/16, C]   (when H >= 8)
plus ``norm_x`` (per-channel sqrt(mean x^2) of the encoder input, [n, 1, C_in]) and ``global`` (the raw
generator output flattened, [n, 1, C*H*W], no encoder). Every feature is one independent drift problem; its
L locations go into the group axis ([B*L, G, D]), so they share one feature scale and one drift RMS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from drifting_policy.drift import multi_feature_drift_loss

STAT_EPS = 1e-6  # inside the std's sqrt: keeps its gradient finite on flat patches
KINDS = ("loc", "stats", "patch2", "patch4", "norm_x", "global")


@dataclass
class FeatureConfig:
    """Which feature sets enter the loss. ``kinds`` from :data:`KINDS`; ("global",) alone = raw space."""

    kinds: tuple[str, ...] = KINDS
    # Skip per-location/patch sets with more locations than this (None: keep all). A CPU economy: the
    # field's cost grows with groups x locations, and the 32x32 map alone has 1024 locations.
    max_locations: int | None = None

    def __post_init__(self):
        self.kinds = tuple(self.kinds)
        if self.max_locations is not None and self.max_locations < 1:
            raise ValueError(f"max_locations={self.max_locations}; expected None or >= 1")
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown or not self.kinds:
            raise ValueError(
                f"feature kinds {list(self.kinds)}: unknown {unknown}; expected a non-empty subset "
                f"of {list(KINDS)}"
            )

    @property
    def needs_encoder(self) -> bool:
        return any(kind not in ("global",) for kind in self.kinds)


def _mean_std(x: Tensor, patch: int) -> tuple[Tensor, Tensor]:
    """Mean and std over non-overlapping patch x patch windows of x [n, C, H, W] -> two [n, L, C]."""
    mean = F.avg_pool2d(x, patch)
    second = F.avg_pool2d(x.square(), patch)
    std = (second - mean.square()).clamp_min(0.0).add(STAT_EPS).sqrt()
    return mean.flatten(2).transpose(1, 2), std.flatten(2).transpose(1, 2)


def map_features(
    name: str,
    fmap: Tensor,
    kinds: tuple[str, ...],
    max_locations: int | None = None,
) -> dict[str, Tensor]:
    """Feature sets of one map [n, C, H, W]: name.kind -> [n, L, C]."""
    fmap = fmap.float()
    height = fmap.shape[-1]
    limit = max_locations or height * height
    out: dict[str, Tensor] = {}
    if "loc" in kinds and height * height <= limit:
        out[f"{name}.loc"] = fmap.flatten(2).transpose(1, 2)  # [n, H*W, C]
    if "stats" in kinds:
        out[f"{name}.mean"], out[f"{name}.std"] = _mean_std(fmap, height)  # [n, 1, C]
    for patch, kind in ((2, "patch2"), (4, "patch4")):
        if (
            kind in kinds and height >= 2 * patch and (height // patch) ** 2 <= limit
        ):  # a patch as large as the map duplicates the global stats
            out[f"{name}.p{patch}m"], out[f"{name}.p{patch}s"] = _mean_std(fmap, patch)
    return out


def extract_features(
    encoder: Callable[[Tensor], list[list[Tensor]]] | None,
    x: Tensor,
    config: FeatureConfig,
    encoder_input: Tensor | None = None,
) -> dict[str, Tensor]:
    """All feature sets of samples x [n, C, H, W]: name -> [n, L, D] float32.

    ``encoder_input`` is what the encoder sees (decoded pixels in latent space; ``x`` itself by default);
    ``global`` is always the raw ``x``.
    """
    feats: dict[str, Tensor] = {}
    if config.needs_encoder:
        if encoder is None:
            raise ValueError(
                f"feature kinds {list(config.kinds)} need an encoder; got None "
                "(use features.kinds=[global] for raw space)"
            )
        pixels = x if encoder_input is None else encoder_input
        for stage, maps in enumerate(encoder(pixels)):
            for index, fmap in enumerate(maps):
                feats.update(map_features(f"s{stage}b{index}", fmap, config.kinds, config.max_locations))
        if "norm_x" in config.kinds:
            feats["norm_x"] = pixels.float().square().mean(dim=(2, 3)).add(STAT_EPS).sqrt().unsqueeze(1)
    if "global" in config.kinds:
        feats["global"] = x.float().flatten(1).unsqueeze(1)  # [n, 1, C*H*W]
    return feats


def to_groups(feature: Tensor, num_groups: int) -> Tensor:
    """[B*S, L, D] (S samples per group, group-major) -> [B*L, S, D]: each location its own kernel problem."""
    n, locations, dim = feature.shape
    per_group = n // num_groups
    return feature.reshape(num_groups, per_group, locations, dim).transpose(1, 2).reshape(-1, per_group, dim)


def feature_drift_loss(
    gen: dict[str, Tensor],
    pos: dict[str, Tensor],
    neg: dict[str, Tensor] | None,
    num_groups: int,
    neg_weight: Tensor | None = None,
    **options,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum over feature sets of independent drift losses.

    Args:
        gen: name -> [B*G, L, D] generated features (group-major, with gradients).
        pos: name -> [B*P, L, D] positives.
        neg: name -> [N, L, D] unconditional negatives, shared by all B groups (or None).
        neg_weight: [B] CFG weight w of each group's negatives (or None).
        **options: temperatures, normalize, attraction, repulsion, ... of the field.

    Returns: total loss [] and metrics ``<feature>/<metric>`` from ``multi_feature_drift_loss``, with the
    per-group weight expanded to each feature's own [B*L, N] (L differs between feature sets).
    """
    if not gen:
        raise ValueError("no feature sets to drift; check features.kinds")
    gen_groups = {name: to_groups(feat, num_groups) for name, feat in gen.items()}  # [B*L, G, D]
    pos_groups = {name: to_groups(feat, num_groups) for name, feat in pos.items()}  # [B*L, P, D]
    neg_groups, weights = None, None
    if neg is not None:
        neg_groups = {}
        for name, feat in neg.items():
            shared = feat.unsqueeze(0).expand(num_groups, *feat.shape)  # [B, N, L, D]
            neg_groups[name] = to_groups(shared.reshape(-1, *feat.shape[1:]), num_groups)  # [B*L, N, D]
        if neg_weight is not None:
            weights = {name: neg_weight.repeat_interleave(feat.shape[1]).unsqueeze(1)  # [B*L, 1]
                       for name, feat in gen.items()}
    return multi_feature_drift_loss(gen_groups, pos_groups, neg_groups, neg_weight=weights,
                                    check_finite=False, **options)


def cfg_neg_weight(alpha: Tensor, num_gen: int, num_unc: int) -> Tensor:
    """Weight of the unconditional negatives for CFG scale alpha: w = (alpha - 1)(N_neg - 1) / N_unc.

    N_neg - 1 because the self-mask leaves each generated sample N_neg - 1 generated negatives.
    """
    if num_unc < 1:
        raise ValueError(f"n_unc={num_unc}; CFG needs at least one unconditional negative")
    return (alpha - 1.0) * (num_gen - 1) / num_unc


@torch.no_grad()
def count_features(encoder, sample: Tensor, config: FeatureConfig) -> dict[str, tuple[int, int]]:
    """name -> (locations, dim) for a sample batch; used to print and test the feature layout."""
    return {name: (f.shape[1], f.shape[2]) for name, f in extract_features(encoder, sample, config).items()}

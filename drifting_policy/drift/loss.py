"""Drift losses: pull generated samples onto the stop-gradient target ``gen + V(gen)``.

The loss value is E|V|^2 in normalised feature units; under drift normalisation it stays near a constant
(about the number of temperatures), so it says little about progress. The metrics returned beside it are
what to watch: raw drift RMS per temperature, feature scale, nearest-positive distance, sample spread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from torch import Tensor

from drifting_policy.drift.field import DEFAULT_TEMPERATURES, drift_field_result


def drift_loss_with_metrics(
    gen: Tensor,
    pos: Tensor,
    neg: Tensor | None = None,
    *,
    neg_weight: float | Tensor | None = None,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    normalize: bool = True,
    **field_options,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Drift loss and its diagnostics from one field evaluation.

    Args: as :func:`drifting_policy.drift.drift_field`; ``gen`` [B, G, D] keeps its graph, ``pos`` and
    ``neg`` are treated as constants.

    Returns:
        loss: [] float32 scalar, mean over groups of mean((x - sg(x + V))^2), with x the generated samples in
            normalised units x * sqrt(D) / s when ``normalize`` (raw units otherwise). Gradient flows into
            ``gen`` only.
        metrics: detached 0-dim tensors (no host sync): ``feature_scale``, ``nearest_pos_dist``,
            ``gen_spread``, ``drift_rms/tau_<t>`` (raw, before normalisation).
    """
    result = drift_field_result(gen, pos, neg, neg_weight=neg_weight, temperatures=temperatures,
                                normalize=normalize, **field_options)
    x = gen.to(result.field.dtype)  # [B, G, D], keeps the graph into the generator
    target = (x + result.field).detach()  # stop-gradient target
    units = math.sqrt(gen.shape[-1]) / result.scale if normalize else 1.0  # s is a stop-grad constant
    loss = ((x - target) * units).square().mean()
    metrics = {
        "feature_scale": result.scale,
        "nearest_pos_dist": result.nearest_pos,
        "gen_spread": result.gen_spread,
    }
    for tau, rms in zip(temperatures, result.raw_drift_rms, strict=True):
        metrics[f"drift_rms/tau_{tau:g}"] = rms
    return loss, metrics


def drift_loss(gen: Tensor, pos: Tensor, neg: Tensor | None = None, **options) -> Tensor:
    """Scalar drift loss (see :func:`drift_loss_with_metrics`); gradient flows only into ``gen``."""
    return drift_loss_with_metrics(gen, pos, neg, **options)[0]


def multi_feature_drift_loss(
    gen_feats: Mapping[str, Tensor],
    pos_feats: Mapping[str, Tensor],
    neg_feats: Mapping[str, Tensor] | None = None,
    *,
    neg_weight: float | Tensor | Mapping[str, float | Tensor] | None = None,
    **options,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum of independent drift losses, one per named feature set (each with its own feature scale).

    Args:
        gen_feats: name -> [B, G, D_name] generated features (with gradients).
        pos_feats: name -> [B, P, D_name] positive features; same keys as ``gen_feats``.
        neg_feats: optional name -> [B, N, D_name] extra negatives; same keys when given.
        neg_weight: weight of the extra negatives: one float/tensor for every feature, or a mapping
            name -> weight when the group axis differs between features (locations folded into groups).
        **options: passed to :func:`drift_loss_with_metrics` (temperatures, normalize, ...).

    Returns:
        total loss [] and metrics prefixed by feature name (``<name>/loss``, ``<name>/feature_scale``, ...).
    """
    if set(gen_feats) != set(pos_feats) or (neg_feats is not None and set(neg_feats) != set(gen_feats)):
        raise ValueError(f"feature keys differ: gen {sorted(gen_feats)}, pos {sorted(pos_feats)}, "
                         f"neg {None if neg_feats is None else sorted(neg_feats)}")
    if not gen_feats:
        raise ValueError("gen_feats is empty; pass at least one feature set")
    total = None
    metrics: dict[str, Tensor] = {}
    if isinstance(neg_weight, Mapping) and set(neg_weight) != set(gen_feats):
        raise ValueError(f"neg_weight keys {sorted(neg_weight)} differ from feature keys {sorted(gen_feats)}")
    for name, gen in gen_feats.items():
        neg = None if neg_feats is None else neg_feats[name]
        weight = neg_weight[name] if isinstance(neg_weight, Mapping) else neg_weight
        try:
            loss, feature_metrics = drift_loss_with_metrics(gen, pos_feats[name], neg, neg_weight=weight,
                                                            **options)
        except ValueError as error:
            raise ValueError(f"feature '{name}': {error}") from error
        total = loss if total is None else total + loss
        metrics[f"{name}/loss"] = loss.detach()
        metrics.update({f"{name}/{key}": value for key, value in feature_metrics.items()})
    return total, metrics

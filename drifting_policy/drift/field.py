"""The drifting field V(x) of Drifting Models (arXiv 2602.04770), on grouped tensors.

Shape legend (used by every docstring in this package):
    B  independent kernel problems ("groups"): one per condition (an observation, a class x location)
    G  generated samples per group; they are also the negatives of their own group (self-pairs masked)
    N  extra negatives per group (e.g. unconditional real samples for CFG), weighted
    P  positives (data samples of the group's condition)
    D  feature dimension

One group is one kernel problem: attraction towards its positives, repulsion from its generated samples and
extra negatives. Groups never exchange samples. With ``normalize=True`` they share two scalars only, as in the
official code: the feature scale (mean pairwise distance) and, per temperature, the drift RMS.

Algorithm (paper's Algorithm 2, product form), per group and temperature tau, with columns
Y = [gen | neg | pos] of the joint logit matrix l = -dist(x, Y) / tau:
    A   = sqrt(softmax_rows(l) * softmax_cols(l))          # [G, K], K = G + N + P
    s+  = sum of A over positive columns,  s- = sum over gen|neg columns (times their weights)
    V_i = sum_pos A_ij s-_i (y_j - x_i)  -  sum_neg A_ij s+_i (y_j - x_i)
The x_i terms cancel (both sums weigh x_i by s+ s-), so swapping positives and negatives flips V exactly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

DEFAULT_TEMPERATURES: tuple[float, ...] = (0.02, 0.05, 0.2)
# Official code floors each affinity at sqrt(1e-6): far-away samples keep a tiny uniform pull, and the
# cross-weighting sums never vanish. Part of the official normalisation only.
AFFINITY_FLOOR = 1e-3
# Floor on squared distances before the square root (official): keeps sqrt differentiable-safe and finite.
SQ_DIST_FLOOR = 1e-8
# Guards the per-temperature drift RMS division when the field is exactly zero (q = p).
DRIFT_RMS_EPS = 1e-12
KERNEL_NORMS = ("both", "rows", "none")
FIELD_BACKENDS = ("auto", "eager", "fused")  # 'fused': drift/fused.py (Triton), the default on CUDA
FIELD_BACKEND_ENV = "DRIFTING_FIELD_BACKEND"  # overrides 'auto' for a whole process


@dataclass(frozen=True)
class FieldResult:
    """Everything one field evaluation produces, so losses and diagnostics need no second pass.

    field:          [B, G, D] drift V in the input's units (float32, or float64 for float64 inputs)
    scale:          [] feature scale s (weighted mean distance; 1.0 when ``normalize=False``)
    raw_drift_rms:  [T] RMS of each temperature's field before drift normalisation, in units of the
                    normalised features x * sqrt(D) / s (scale-free, comparable across features)
    nearest_pos:    [] mean distance from a generated sample to its nearest positive (input units)
    gen_spread:     [] mean distance between two generated samples of one group (input units); a collapse
                    detector: it falls towards 0 when a group's samples coincide
    """

    field: Tensor
    scale: Tensor
    raw_drift_rms: Tensor
    nearest_pos: Tensor
    gen_spread: Tensor


def _check_inputs(gen: Tensor, pos: Tensor, neg: Tensor | None, neg_weight, temperatures, kernel_norm,
                  include_gen_negatives: bool, check_finite: bool) -> None:
    if gen.dim() != 3 or pos.dim() != 3:
        raise ValueError(f"gen and pos must be [B, G, D] and [B, P, D]; got gen {list(gen.shape)}, "
                         f"pos {list(pos.shape)}")
    batch, num_gen, dim = gen.shape
    if pos.shape[0] != batch or pos.shape[2] != dim:
        raise ValueError(f"pos {list(pos.shape)} does not match gen {list(gen.shape)}: expected "
                         f"[{batch}, P, {dim}] (same groups B and feature dim D)")
    if pos.shape[1] < 1:
        raise ValueError("pos has P=0 positives per group; the field needs at least one positive")
    if neg is not None and (neg.dim() != 3 or neg.shape[0] != batch or neg.shape[2] != dim):
        raise ValueError(f"neg must be [{batch}, N, {dim}] to match gen {list(gen.shape)}; "
                         f"got {list(neg.shape)}")
    if neg_weight is not None and neg is None:
        raise ValueError("neg_weight was given but neg is None; pass the extra negatives too")
    if isinstance(neg_weight, Tensor) and neg is not None:
        # A per-group [B] weight would silently broadcast along N when B == N: demand an explicit shape.
        allowed = [(), (batch, 1), (batch, neg.shape[1]), (1, neg.shape[1])]
        if tuple(neg_weight.shape) not in allowed:
            raise ValueError(f"neg_weight {list(neg_weight.shape)}: expected a scalar, [B, 1] = [{batch}, 1] "
                             f"(per group) or [B, N] = {list(neg.shape[:2])}; unsqueeze a per-group [B] "
                             "weight to [B, 1]")
    if include_gen_negatives and num_gen < 2:
        raise ValueError(f"gen has G={num_gen} sample per group: with the self-mask it has no other "
                         "generated sample to repel from: degenerate field; use G >= 2; 4-8 is typical")
    if not include_gen_negatives and (neg is None or neg.shape[1] == 0):
        raise ValueError("include_gen_negatives=False needs extra negatives in neg; got none")
    if len(temperatures) == 0 or any(float(t) <= 0 for t in temperatures):
        raise ValueError(f"temperatures must be a non-empty sequence of positive floats; got {temperatures}")
    if kernel_norm not in KERNEL_NORMS:
        raise ValueError(f"kernel_norm={kernel_norm!r}; expected one of {KERNEL_NORMS}")
    for dtype_name, tensor in (("gen", gen), ("pos", pos), ("neg", neg)):
        if tensor is not None and not tensor.is_floating_point():
            raise ValueError(f"{dtype_name} must be a floating-point tensor; got {tensor.dtype}")
    if check_finite:  # one host sync; hot loops pass check_finite=False and watch the loss instead
        for name, tensor in (("gen", gen), ("pos", pos), ("neg", neg)):
            if tensor is not None and not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"{name} contains NaN or Inf values")


def _pairwise_distance(x: Tensor, y: Tensor) -> Tensor:
    """[B, G, D] x [B, K, D] -> [B, G, K] Euclidean distances: one [B, G, K] allocation."""
    y_sq = (y * y).sum(-1).unsqueeze(1)  # [B, 1, K]
    sq = torch.baddbmm(y_sq, x, y.transpose(1, 2), alpha=-2.0)  # [B, G, K]
    return sq.add_((x * x).sum(-1, keepdim=True)).clamp_min_(SQ_DIST_FLOOR).sqrt_()


def _logsumexp(logits: Tensor, dim: int) -> Tensor:
    """torch.logsumexp with keepdim, through one temporary of logits' size (torch's takes two)."""
    peak = logits.amax(dim=dim, keepdim=True)  # finite: every row and column has a finite entry
    return (logits - peak).exp_().sum(dim=dim, keepdim=True).log_().add_(peak)


def _affinity(logits: Tensor, kernel_norm: str, floor: float | None) -> Tensor:
    """Kernel weights from logits [B, G, K] (modified in place and returned).

    'both': sqrt(softmax over columns * softmax over rows) = exp(l - lse_row/2 - lse_col/2), which needs
    one matrix instead of three. The column softmax runs over the G generated rows of each group only.
    """
    if kernel_norm == "both":
        lse_row = _logsumexp(logits, dim=-1)  # [B, G, 1]
        lse_col = _logsumexp(logits, dim=-2)  # [B, 1, K]
        affinity = logits.sub_(0.5 * lse_row).sub_(0.5 * lse_col).exp_()
    elif kernel_norm == "rows":
        affinity = logits.sub_(_logsumexp(logits, dim=-1)).exp_()
    else:  # "none": the plain Laplace kernel k(x, y) = exp(-|x - y| / tau)
        affinity = logits.exp_()
    if floor is not None:
        affinity.clamp_min_(floor)
    return affinity


def drift_field_result(
    gen: Tensor,
    pos: Tensor,
    neg: Tensor | None = None,
    *,
    neg_weight: float | Tensor | None = None,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    normalize: bool = True,
    kernel_norm: str = "both",
    attraction: float = 1.0,
    repulsion: float = 1.0,
    include_gen_negatives: bool = True,
    affinity_floor: float | None = AFFINITY_FLOOR,
    check_finite: bool = True,
    backend: str = "auto",
) -> FieldResult:
    """Drifting field with diagnostics; see :func:`drift_field` for the arguments."""
    _check_inputs(gen, pos, neg, neg_weight, temperatures, kernel_norm, include_gen_negatives, check_finite)
    if affinity_floor is not None and not affinity_floor >= 0:
        raise ValueError(f"affinity_floor={affinity_floor!r}: expected None or a float >= 0; "
                         f"the official value is {AFFINITY_FLOOR}")
    compute_dtype = torch.float64 if gen.dtype == torch.float64 else torch.float32
    # Autocast off: bf16 matmuls would round the distances before a softmax at tau = 0.02 (underflow).
    with torch.no_grad(), torch.autocast(gen.device.type, enabled=False):
        if backend not in FIELD_BACKENDS:
            raise ValueError(f"backend={backend!r}; expected one of {FIELD_BACKENDS}")
        if backend == "fused" or (backend == "auto" and (gen.is_cuda or os.environ.get(FIELD_BACKEND_ENV))):
            from drifting_policy.drift import fused  # imports Triton: only where a fused path may run

            if fused.resolve_backend(backend, gen, pos, neg) == "fused":
                return fused.fused_field_result(gen, pos, neg, neg_weight, tuple(map(float, temperatures)),
                                                normalize, kernel_norm, attraction, repulsion,
                                                include_gen_negatives, affinity_floor)
        return _field(gen.detach().to(compute_dtype), pos.detach().to(compute_dtype),
                      None if neg is None else neg.detach().to(compute_dtype), neg_weight,
                      tuple(float(t) for t in temperatures), normalize, kernel_norm,
                      attraction, repulsion, include_gen_negatives, affinity_floor)


def _field(gen: Tensor, pos: Tensor, neg: Tensor | None, neg_weight, temperatures: tuple[float, ...],
           normalize: bool, kernel_norm: str, attraction: float, repulsion: float,
           include_gen_negatives: bool, affinity_floor: float | None) -> FieldResult:
    batch, num_gen, dim = gen.shape
    num_self = num_gen if include_gen_negatives else 0  # gen columns among the negatives
    num_neg = 0 if neg is None else neg.shape[1]
    first_pos = num_self + num_neg
    negatives = ([gen] if include_gen_negatives else []) + ([] if neg is None else [neg])
    # Columns [gen | neg | pos]. Centring per group changes no distance or drift, but keeps the matmul
    # distance formula accurate when the data sit far from the origin.
    columns = torch.cat([*negatives, pos], dim=1)  # [B, K, D]
    center = columns.mean(dim=1, keepdim=True)  # [B, 1, D]
    columns = columns - center
    x = gen - center  # [B, G, D]

    # Column weights: neg_weight for extra negatives, 1 elsewhere.
    weight = torch.ones(batch, 1, columns.shape[1], dtype=gen.dtype, device=gen.device)  # [B, 1, K]
    if num_neg and neg_weight is not None:
        weight[:, 0, num_self:first_pos] = torch.as_tensor(neg_weight, dtype=gen.dtype, device=gen.device)

    dist = _pairwise_distance(x, columns)  # [B, G, K]
    self_mask = torch.zeros_like(dist[:1], dtype=torch.bool)  # [1, G, K]
    self_mask[0, :, :num_self] = torch.eye(num_gen, dtype=torch.bool, device=gen.device)[:, :num_self]
    # Diagnostics first: dist becomes the logits in place below.
    nearest_pos = dist[:, :, first_pos:].min(dim=-1).values.mean()
    if num_gen > 1:
        gen_gen = _pairwise_distance(x, x) if num_self == 0 else dist[:, :, :num_gen]  # [B, G, G]
        # diagonal entries are sqrt(SQ_DIST_FLOOR), not 0: subtract them rather than copy the off-diagonal
        off_diag_sum = gen_gen.sum() - torch.diagonal(gen_gen, dim1=1, dim2=2).sum()
        gen_spread = off_diag_sum / (batch * num_gen * (num_gen - 1))
    else:
        gen_spread = torch.zeros((), dtype=gen.dtype, device=gen.device)
    if normalize:  # weighted mean distance over non-self pairs, without a [B, G, K] weight matrix
        self_dist = torch.diagonal(dist[:, :, :num_self], dim1=1, dim2=2).sum() if num_self else 0.0
        weighted = torch.bmm(dist, weight.transpose(1, 2)).sum() - self_dist  # self columns weigh 1
        total_weight = num_gen * weight.sum() - batch * num_self
        scale = weighted / total_weight
    else:
        scale = torch.ones((), dtype=gen.dtype, device=gen.device)
    base_logits = dist.div_(-scale).masked_fill_(self_mask, float("-inf"))  # [B, G, K], reuses dist
    floor = affinity_floor if normalize and kernel_norm == "both" else None

    total = torch.zeros_like(x)
    raw_rms = []
    for tau in temperatures:
        affinity = _affinity(base_logits / tau, kernel_norm, floor).mul_(weight)  # [B, G, K]
        pos_sum = affinity[:, :, first_pos:].sum(-1, keepdim=True)  # [B, G, 1]
        neg_sum = affinity[:, :, :first_pos].sum(-1, keepdim=True)  # [B, G, 1]
        if kernel_norm == "none":  # no normaliser to cross-weight: plain attraction minus repulsion means
            pos_coef, neg_coef = 1.0 / pos.shape[1], 1.0 / max(first_pos - min(num_self, 1), 1)
        else:
            pos_coef, neg_coef = neg_sum, pos_sum
        affinity[:, :, first_pos:] *= attraction * pos_coef
        affinity[:, :, :first_pos] *= -repulsion * neg_coef
        # sum_j c_ij (y_j - x_i); the x_i term is exactly zero unless attraction != repulsion
        drift = torch.bmm(affinity, columns) - affinity.sum(-1, keepdim=True) * x  # [B, G, D]
        del affinity  # free this temperature's [B, G, K] before the next one is allocated
        rms = drift.square().mean().sqrt()
        raw_rms.append(rms * math.sqrt(dim) / scale)
        total += drift / (rms + DRIFT_RMS_EPS) * scale / math.sqrt(dim) if normalize else drift

    return FieldResult(total, scale, torch.stack(raw_rms), nearest_pos, gen_spread)


def drift_field(
    gen: Tensor,
    pos: Tensor,
    neg: Tensor | None = None,
    *,
    neg_weight: float | Tensor | None = None,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    normalize: bool = True,
    kernel_norm: str = "both",
    attraction: float = 1.0,
    repulsion: float = 1.0,
    include_gen_negatives: bool = True,
    affinity_floor: float | None = AFFINITY_FLOOR,
    check_finite: bool = True,
    backend: str = "auto",
) -> Tensor:
    """Drifting field V for grouped samples; the training target is ``gen + V``.

    Args:
        gen: [B, G, D] generated samples; also the negatives of their own group, self-pairs masked.
        pos: [B, P, D] positives (data of each group's condition).
        neg: [B, N, D] optional extra negatives (CFG: unconditional real samples).
        neg_weight: weight of the extra negatives, a float or a tensor broadcastable to [B, N]
            (CFG: (alpha - 1)(G - 1) / N). Also weighs their distances in the feature scale.
        temperatures: kernel temperatures tau, relative to the mean distance when ``normalize``.
        normalize: the official normalisation: distances divided by one global feature scale, each
            temperature's field divided by its global RMS (then scaled back to input units), summed over
            temperatures, affinities floored at 1e-3. ``False`` with one temperature is exactly the paper's
            Algorithm 2 per group (fields of several temperatures are then summed unnormalised).
        kernel_norm: 'both' (softmax over positives|negatives and over generated samples, the default),
            'rows' (over positives|negatives only) or 'none' (plain kernel): the paper's Table 11 ablation.
        attraction, repulsion: multipliers of the attraction and repulsion terms; anything but equal breaks
            anti-symmetry (the paper's Table 1 ablation). Leave at 1.0.
        include_gen_negatives: if False, only ``neg`` repels (used to test anti-symmetry V_pq = -V_qp).
        affinity_floor: the official code's floor on each affinity (applies with ``normalize`` and
            ``kernel_norm='both'``). With G and P in the hundreds it is as large as a real affinity and pulls
            every sample towards the mean of the positives (docs/experiments/toy.md); None disables it.
        check_finite: raise ValueError on NaN/Inf inputs (one host sync; hot loops may turn it off).
        backend: 'auto' (the fused Triton kernel of drift/fused.py on CUDA when Triton is installed, this
            file's code elsewhere; env DRIFTING_FIELD_BACKEND overrides 'auto'), 'eager' or 'fused' (on CPU
            tensors it runs in Triton's interpreter: slow, for tests). Same result to float32 rounding.

    Returns:
        [B, G, D] field in float32 (float64 for float64 inputs), computed without gradients.
    """
    return drift_field_result(
        gen, pos, neg, neg_weight=neg_weight, temperatures=temperatures, normalize=normalize,
        kernel_norm=kernel_norm, attraction=attraction, repulsion=repulsion,
        include_gen_negatives=include_gen_negatives, affinity_floor=affinity_floor,
        check_finite=check_finite, backend=backend,
    ).field

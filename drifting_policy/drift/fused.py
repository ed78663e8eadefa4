"""The drifting field as one Triton kernel: no [B, G, K] matrix ever reaches memory.

Same contract and result as :func:`drifting_policy.drift.field.drift_field_result` (shape legend there);
``backend='auto'`` picks this path on CUDA when Triton is installed, ``backend='fused'`` forces it (on CPU
tensors only in Triton's interpreter, TRITON_INTERPRET=1 from the process start: how the CPU tests check
it) and the environment variable ``DRIFTING_FIELD_BACKEND`` (auto | eager | fused) overrides ``auto``.

One program per group b keeps its [G, K] logits in registers (columns K = [gen | neg | pos], padded to a
power of two) and streams the features through in D-blocks. The groups share two kinds of scalars, the
feature scale and each temperature's drift RMS, so the kernel runs in up to three launches, each reading the
inputs once more (reads are the cheap part; the eager code writes and rereads several [B, G, K] matrices
per temperature):
    stats: distances -> per group: weighted distance sum (feature scale), nearest positive, generated spread
    rms:   full field per temperature -> per group: sum of squares of each temperature's drift
    field: the temperatures' coefficient matrices summed with their weights 1 / RMS, one matmul with the
           columns -> V, the only [B, G, D] write (the drift is linear in the coefficients)
Everything inside is float32 (bf16 inputs are cast on load: at tau = 0.02 a bf16 softmax underflows).
"""

from __future__ import annotations

import functools
import math
import os

import torch
from torch import Tensor

from drifting_policy.drift.field import (
    DRIFT_RMS_EPS,
    FIELD_BACKEND_ENV,
    FIELD_BACKENDS,
    SQ_DIST_FLOOR,
    FieldResult,
)

try:  # optional: without Triton every call takes the eager path
    import triton
    import triton.language as tl
except ImportError:
    triton = tl = None

BACKENDS, BACKEND_ENV = FIELD_BACKENDS, FIELD_BACKEND_ENV
# Largest [G, K] tile (padded) one program holds: 64 x 256 is the ImageNet recipe's group; beyond it the
# registers spill and the eager code is the better choice.
MAX_TILE = 64 * 256
KERNEL_NORM_CODES = {"both": 0, "rows": 1, "none": 2}
MODE_STATS, MODE_RMS, MODE_FIELD = 0, 1, 2
NUM_STATS = 3  # per group: weighted distance sum, nearest-positive sum, generated-pair distance sum
# tl.dot input precision on CUDA: three TF32 products per fp32 product (tensor cores, ~fp32 accuracy).
# 'ieee' is exact fp32 on the FMA units; the interpreter is exact either way.
CUDA_DOT_PRECISION = "tf32x3"


def triton_available() -> bool:
    return triton is not None


def _blocks(num_gen: int, num_columns: int, dim: int) -> tuple[int, int, int]:
    """(BLOCK_G, BLOCK_K, BLOCK_D): powers of two, at least 16 (tl.dot's smallest tile). The D-block shrinks
    as the tile grows: at 64 x 256, BLOCK_D = 16 keeps shared memory at 160 KiB (sm_90 compile)."""
    block = lambda n: max(16, 1 << max(n - 1, 0).bit_length())  # noqa: E731
    block_g, block_k = block(num_gen), block(num_columns)
    return block_g, block_k, min(block(dim), 16 if block_g * block_k >= MAX_TILE else 32)


def launch_options(block_g: int, block_k: int) -> dict[str, int]:
    """Warps per program (16 for the largest tile: 128 registers a thread) and no software pipelining of
    the D loop (each stage would hold another copy of the column block in shared memory)."""
    tile = block_g * block_k
    return {"num_warps": 16 if tile >= MAX_TILE else 8 if tile >= 4096 else 4, "num_stages": 1}


def fits(gen: Tensor, pos: Tensor, neg: Tensor | None) -> bool:
    """Whether one group's padded [G, K] tile fits a program (see MAX_TILE)."""
    columns = gen.shape[1] + pos.shape[1] + (0 if neg is None else neg.shape[1])
    block_g, block_k, _ = _blocks(gen.shape[1], columns, gen.shape[2])
    return block_g * block_k <= MAX_TILE


def resolve_backend(backend: str, gen: Tensor, pos: Tensor, neg: Tensor | None) -> str:
    """'eager' or 'fused'. 'auto' (or the env override) means fused on CUDA with Triton, eager elsewhere."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r}; expected one of {BACKENDS}")
    if backend == "auto":
        backend = os.environ.get(BACKEND_ENV, "auto") or "auto"
        if backend not in BACKENDS:
            raise ValueError(f"{BACKEND_ENV}={backend!r}; expected one of {BACKENDS} (or unset it)")
    if backend == "auto":
        usable = (gen.is_cuda and gen.dtype != torch.float64 and triton_available() and not interpreting()
                  and fits(gen, pos, neg))
        return "fused" if usable else "eager"
    if backend == "fused":
        if not triton_available():
            raise ValueError("backend='fused' needs Triton; pip install triton, or use backend='eager'")
        if gen.dtype == torch.float64:
            raise ValueError("backend='fused' computes in float32; float64 inputs need backend='eager'")
        if not fits(gen, pos, neg):
            raise ValueError(f"backend='fused': a group's padded [G, K] tile exceeds {MAX_TILE} entries "
                             f"(G={gen.shape[1]}, P={pos.shape[1]}); use backend='eager' for such groups")
    return backend


def _centered_block(gen_base, col_ptrs, rows, row_ok, col_ok, active, num_active, d0, D,
                    BLOCK_D: tl.constexpr):
    """Features d0 .. d0 + BLOCK_D of the rows x [BLOCK_G, BLOCK_D] and columns y [BLOCK_K, BLOCK_D], in
    float32, centred on the active columns' mean (the eager code's centring) and zero outside the tile;
    with dims [BLOCK_D] and d_ok [1, BLOCK_D]. Every pass over D (stats, rms, field) reads through it."""
    dims = d0 + tl.arange(0, BLOCK_D)
    d_ok = (dims < D)[None, :]
    x = tl.load(gen_base + rows[:, None] * D + dims[None, :], mask=row_ok[:, None] & d_ok, other=0.0)
    y = tl.load(col_ptrs + dims[None, :], mask=col_ok & d_ok, other=0.0).to(tl.float32)
    center = tl.sum(tl.where(active[:, None], y, 0.0), axis=0) / num_active  # [BLOCK_D]
    x = tl.where(row_ok[:, None] & d_ok, x.to(tl.float32) - center[None, :], 0.0)
    y = tl.where(col_ok & d_ok, y - center[None, :], 0.0)
    return dims, d_ok, x, y


if triton is not None:  # the kernel calls it by this global name, so it must be a jit function too
    _centered_block = triton.jit(_centered_block)


def _field_kernel(gen_ptr, neg_ptr, pos_ptr, weight_ptr, tau_ptr, coef_ptr, scale_ptr,
                  out_ptr, stats_ptr, sumsq_ptr,
                  G, N, P, D, sq_dist_floor, floor, attraction, repulsion, pos_coef_plain, neg_coef_plain,
                  MODE: tl.constexpr, NUM_T: tl.constexpr, GEN_NEG: tl.constexpr, NORM: tl.constexpr,
                  USE_FLOOR: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_K: tl.constexpr,
                  BLOCK_D: tl.constexpr, PRECISION: tl.constexpr):
    """One group per program; see the module docstring for MODE. The column tile is loaded from three
    tensors (gen | neg | pos) and centred on the mean of the active columns (_centered_block)."""
    b = tl.program_id(0).to(tl.int64)
    rows = tl.arange(0, BLOCK_G)
    cols = tl.arange(0, BLOCK_K)
    num_cols = G + N + P
    row_ok = rows < G
    is_gen = cols < G
    is_neg = (cols >= G) & (cols < G + N)
    is_pos = (cols >= G + N) & (cols < num_cols)
    active = is_neg | is_pos  # the columns of the eager [B, G, K] matrix
    if GEN_NEG:
        active = active | is_gen
    num_active = tl.sum(active.to(tl.float32), axis=0)
    gen_base = gen_ptr + b * G * D
    col_ptrs = tl.where(is_gen, gen_base + cols * D, tl.where(  # [BLOCK_K, 1]: padding points at gen row 0
        is_neg, neg_ptr + b * N * D + (cols - G) * D, pos_ptr + b * P * D + (cols - G - N) * D))
    col_ptrs = tl.where(cols < num_cols, col_ptrs, gen_base)[:, None]
    col_ok = (cols < num_cols)[:, None]

    dots = tl.zeros((BLOCK_G, BLOCK_K), dtype=tl.float32)
    x_sq = tl.zeros((BLOCK_G,), dtype=tl.float32)
    y_sq = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        _, _, x, y = _centered_block(gen_base, col_ptrs, rows, row_ok, col_ok, active, num_active,
                                     d0, D, BLOCK_D)  # x [BLOCK_G, BLOCK_D], y [BLOCK_K, BLOCK_D]
        dots += tl.dot(x, tl.trans(y), input_precision=PRECISION)
        x_sq += tl.sum(x * x, axis=1)
        y_sq += tl.sum(y * y, axis=1)
    dist = tl.sqrt(tl.maximum(y_sq[None, :] - 2.0 * dots + x_sq[:, None], sq_dist_floor))  # [BG, BK]
    is_self = is_gen[None, :] & (rows[:, None] == cols[None, :])
    real = row_ok[:, None] & active[None, :]
    weight = tl.load(weight_ptr + b * num_cols + cols, mask=active, other=0.0)  # [BLOCK_K]

    if MODE == 0:
        pairs = tl.sum(tl.sum(tl.where(real & ~is_self, dist * weight[None, :], 0.0), axis=1), axis=0)
        nearest = tl.min(tl.where(is_pos[None, :], dist, float("inf")), axis=1)
        nearest_sum = tl.sum(tl.where(row_ok, nearest, 0.0), axis=0)
        spread = tl.sum(tl.sum(tl.where(row_ok[:, None] & is_gen[None, :] & ~is_self, dist, 0.0), 1), 0)
        tl.store(stats_ptr + b * 3 + 0, pairs)
        tl.store(stats_ptr + b * 3 + 1, nearest_sum)
        tl.store(stats_ptr + b * 3 + 2, spread)
    else:
        base = tl.where(real & ~is_self, -dist / tl.load(scale_ptr), float("-inf"))
        coef_total = tl.zeros((BLOCK_G, BLOCK_K), dtype=tl.float32)
        for t in tl.static_range(NUM_T):
            logits = base / tl.load(tau_ptr + t)
            # log-sum-exp of rows and columns (over the G generated rows). A real row or column sums to
            # >= 1 (its peak contributes exp(0)); padding (all -inf) gets peak 0 and sum 1, so lse 0, no NaN.
            if NORM != 2:
                row_max = tl.max(logits, axis=1)
                row_max = tl.where(row_max == float("-inf"), 0.0, row_max)
                row_lse = tl.log(tl.maximum(tl.sum(tl.exp(logits - row_max[:, None]), axis=1), 1.0)) + row_max
            if NORM == 0:
                col_max = tl.max(logits, axis=0)
                col_max = tl.where(col_max == float("-inf"), 0.0, col_max)
                col_lse = tl.log(tl.maximum(tl.sum(tl.exp(logits - col_max[None, :]), axis=0), 1.0)) + col_max
                affinity = tl.exp(logits - 0.5 * row_lse[:, None] - 0.5 * col_lse[None, :])
            elif NORM == 1:
                affinity = tl.exp(logits - row_lse[:, None])
            else:
                affinity = tl.exp(logits)
            if USE_FLOOR:  # the eager floor covers every entry of its matrix, self-pairs included
                affinity = tl.where(real, tl.maximum(affinity, floor), 0.0)
            affinity = affinity * weight[None, :]
            pos_sum = tl.sum(tl.where(is_pos[None, :], affinity, 0.0), axis=1)  # [BLOCK_G]
            neg_sum = tl.sum(tl.where(is_pos[None, :], 0.0, affinity), axis=1)
            if NORM == 2:
                pos_coef = tl.zeros((BLOCK_G,), dtype=tl.float32) + pos_coef_plain
                neg_coef = tl.zeros((BLOCK_G,), dtype=tl.float32) + neg_coef_plain
            else:
                pos_coef, neg_coef = neg_sum, pos_sum
            coef = tl.where(is_pos[None, :], attraction * pos_coef[:, None] * affinity,
                            -repulsion * neg_coef[:, None] * affinity)
            if MODE == 1:  # this temperature's drift, only to sum its squares
                coef_rows = tl.sum(coef, axis=1)
                sum_sq = tl.zeros((BLOCK_G,), dtype=tl.float32)
                for d0 in range(0, D, BLOCK_D):
                    _, _, x, y = _centered_block(gen_base, col_ptrs, rows, row_ok, col_ok, active,
                                                 num_active, d0, D, BLOCK_D)
                    drift = tl.dot(coef, y, input_precision=PRECISION) - coef_rows[:, None] * x
                    sum_sq += tl.sum(drift * drift, axis=1)
                tl.store(sumsq_ptr + b * NUM_T + t, tl.sum(sum_sq, axis=0))
            else:
                coef_total += tl.load(coef_ptr + t) * coef
        if MODE == 2:  # V = C Y - rowsum(C) x with C the weighted sum over temperatures
            coef_rows = tl.sum(coef_total, axis=1)
            for d0 in range(0, D, BLOCK_D):
                dims, d_ok, x, y = _centered_block(gen_base, col_ptrs, rows, row_ok, col_ok, active,
                                                   num_active, d0, D, BLOCK_D)
                drift = tl.dot(coef_total, y, input_precision=PRECISION) - coef_rows[:, None] * x
                tl.store(out_ptr + b * G * D + rows[:, None] * D + dims[None, :], drift,
                         mask=row_ok[:, None] & d_ok)


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (TRITON_INTERPRET=1 when triton was first imported:
    its own library functions are built at import time, so the variable cannot be set later)."""
    return triton is not None and bool(triton.knobs.runtime.interpret)


@functools.cache
def _kernel():
    return triton.jit(_field_kernel)


def _column_weights(gen: Tensor, pos: Tensor, neg: Tensor | None, neg_weight, include_gen_negatives: bool
                    ) -> Tensor:
    """[B, K] float32 weight of each column of [gen | neg | pos]: 1, neg_weight, 1; 0 for gen columns that
    are not negatives (include_gen_negatives=False: they exist in the kernel only for the diagnostics)."""
    batch, num_gen, _ = gen.shape
    num_neg = 0 if neg is None else neg.shape[1]
    weight = torch.ones(batch, num_gen + num_neg + pos.shape[1], dtype=torch.float32, device=gen.device)
    if not include_gen_negatives:
        weight[:, :num_gen] = 0.0
    if num_neg and neg_weight is not None:
        weight[:, num_gen:num_gen + num_neg] = torch.as_tensor(neg_weight, dtype=torch.float32,
                                                                device=gen.device)
    return weight


def fused_field_result(gen: Tensor, pos: Tensor, neg: Tensor | None, neg_weight,
                       temperatures: tuple[float, ...], normalize: bool, kernel_norm: str, attraction: float,
                       repulsion: float, include_gen_negatives: bool, affinity_floor: float | None,
                       precision: str | None = None) -> FieldResult:
    """The field of :func:`drifting_policy.drift.field.drift_field_result` (inputs already checked there).

    gen [B, G, D], pos [B, P, D], neg [B, N, D] or None, any float dtype (read as float32) -> FieldResult
    in float32. ``precision``: tl.dot input precision ('ieee' | 'tf32x3' | 'tf32'); None picks
    CUDA_DOT_PRECISION on CUDA.
    """
    batch, num_gen, dim = gen.shape
    num_pos, num_neg = pos.shape[1], 0 if neg is None else neg.shape[1]
    num_self = num_gen if include_gen_negatives else 0
    device = gen.device
    if len({t.dtype for t in (gen, pos, neg) if t is not None}) > 1:  # one pointer type for all columns
        gen, pos, neg = (None if t is None else t.float() for t in (gen, pos, neg))
    gen, pos = gen.detach().contiguous(), pos.detach().contiguous()
    neg = gen if neg is None else neg.detach().contiguous()  # any valid pointer when N = 0
    weight = _column_weights(gen, pos, None if num_neg == 0 else neg, neg_weight, include_gen_negatives)
    taus = torch.tensor(temperatures, dtype=torch.float32, device=device)
    block_g, block_k, block_d = _blocks(num_gen, num_gen + num_neg + num_pos, dim)
    if device.type != "cuda" and not interpreting():
        raise ValueError(f"backend='fused' on {device.type} tensors runs in Triton's interpreter: start "
                         "Python with TRITON_INTERPRET=1, or use backend='eager'")
    kernel = _kernel()
    if precision is None:
        precision = CUDA_DOT_PRECISION if device.type == "cuda" else "ieee"

    def launch(mode: int, scale: Tensor, coefs: Tensor, out: Tensor, stats: Tensor, sumsq: Tensor) -> None:
        kernel[(batch,)](
            gen, neg, pos, weight, taus, coefs, scale, out, stats, sumsq,
            num_gen, num_neg, num_pos, dim, SQ_DIST_FLOOR, affinity_floor or 0.0, attraction, repulsion,
            1.0 / num_pos, 1.0 / max(num_self + num_neg - min(num_self, 1), 1),
            MODE=mode, NUM_T=len(temperatures), GEN_NEG=include_gen_negatives,
            NORM=KERNEL_NORM_CODES[kernel_norm],
            USE_FLOOR=affinity_floor is not None and normalize and kernel_norm == "both",
            BLOCK_G=block_g, BLOCK_K=block_k, BLOCK_D=block_d, PRECISION=precision,
            **launch_options(block_g, block_k),
        )

    f32 = dict(dtype=torch.float32, device=device)
    stats, sumsq = torch.empty(batch, NUM_STATS, **f32), torch.empty(batch, len(temperatures), **f32)
    field = torch.empty(batch, num_gen, dim, **f32)
    ones = torch.ones(len(temperatures), **f32)
    launch(MODE_STATS, ones[:1], ones, field, stats, sumsq)
    totals = stats.sum(0)  # [3]
    if normalize:  # weighted mean distance over non-self pairs; self columns weigh 1
        scale = totals[0] / (num_gen * weight.sum() - batch * num_self)
    else:
        scale = torch.ones((), **f32)
    launch(MODE_RMS, scale.reshape(1), ones, field, stats, sumsq)
    rms = (sumsq.sum(0) / (batch * num_gen * dim)).sqrt()  # [T]
    coefs = scale / math.sqrt(dim) / (rms + DRIFT_RMS_EPS) if normalize else ones
    launch(MODE_FIELD, scale.reshape(1), coefs.contiguous(), field, stats, sumsq)
    nearest_pos = totals[1] / (batch * num_gen)
    gen_spread = totals[2] / (batch * num_gen * (num_gen - 1)) if num_gen > 1 else torch.zeros((), **f32)
    return FieldResult(field, scale, rms * math.sqrt(dim) / scale, nearest_pos, gen_spread)


def compiled_shared_memory(num_gen: int, num_columns: int, dim: int, arch: int = 90) -> dict[str, int]:
    """Shared memory (bytes) of each launch compiled for CUDA compute capability ``arch``, on the host: no GPU
    needed, but not under TRITON_INTERPRET=1. A launch above the device's limit fails at run time."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, compile

    block_g, block_k, block_d = _blocks(num_gen, num_columns, dim)
    kernel, shared = _kernel(), {}
    for name, mode in (("stats", MODE_STATS), ("rms", MODE_RMS), ("field", MODE_FIELD)):
        constants = dict(MODE=mode, NUM_T=3, GEN_NEG=True, NORM=0, USE_FLOOR=True, BLOCK_G=block_g,
                         BLOCK_K=block_k, BLOCK_D=block_d, PRECISION=CUDA_DOT_PRECISION)
        types = ["*fp32"] * 10 + ["i32"] * 4 + ["fp32"] * 6 + ["constexpr"] * len(constants)
        signature = dict(zip(kernel.arg_names, types, strict=True))
        compiled = compile(ASTSource(fn=kernel, signature=signature, constexprs=constants),
                           target=GPUTarget("cuda", arch, 32), options=launch_options(block_g, block_k))
        shared[name] = compiled.metadata.shared
    return shared

"""The fused Triton field equals drift_field's eager code (float32 rounding) for every option.

Without a GPU the kernel runs in Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1); with one,
the same tests run the compiled kernel on CUDA tensors. Tests marked ``gpu`` need CUDA.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from drifting_policy.drift import drift_field_result, drift_loss_with_metrics

fused = pytest.importorskip("drifting_policy.drift.fused")
if not fused.triton_available():
    pytest.skip("triton is not installed", allow_module_level=True)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
needs_kernel = pytest.mark.skipif(DEVICE == "cpu" and not fused.interpreting(),
                                  reason="no CUDA and triton was imported without TRITON_INTERPRET=1")
FIELDS = ("field", "scale", "raw_drift_rms", "nearest_pos", "gen_spread")

# (B, G, P, N, D): tiny, unpadded and padded tiles, D not a multiple of BLOCK_D, one positive, two samples
SHAPES = [(3, 6, 5, 0, 4), (2, 16, 16, 0, 32), (2, 8, 1, 4, 70), (1, 2, 3, 5, 2), (4, 12, 20, 7, 17)]
OPTIONS = [
    {},
    {"temperatures": (0.05,)},
    {"normalize": False, "temperatures": (0.3, 1.0)},
    {"kernel_norm": "rows"},
    {"kernel_norm": "none"},
    {"kernel_norm": "none", "normalize": False, "temperatures": (0.5,)},
    {"affinity_floor": None},
    {"attraction": 1.0, "repulsion": 0.5},
    {"neg_weight": 0.7},
    {"neg_weight": "per_group"},
    {"neg_weight": "per_sample"},
    {"include_gen_negatives": False},
]


def make_inputs(shape, seed, dtype=torch.float32, offset=0.0):
    batch, num_gen, num_pos, num_neg, dim = shape
    g = torch.Generator().manual_seed(seed)
    gen = torch.randn(batch, num_gen, dim, generator=g) + offset
    pos = torch.randn(batch, num_pos, dim, generator=g) * 0.7 + 0.5 + offset
    neg = torch.randn(batch, num_neg, dim, generator=g) - 0.5 + offset if num_neg else None
    return [None if t is None else t.to(DEVICE, dtype) for t in (gen, pos, neg)]


def resolve_weight(option, neg):
    if option == "per_group":
        return torch.rand(neg.shape[0], 1, generator=torch.Generator().manual_seed(1)).to(DEVICE) + 0.5
    if option == "per_sample":
        return torch.rand(*neg.shape[:2], generator=torch.Generator().manual_seed(2)).to(DEVICE) + 0.5
    return option


# tf32x3 products on CUDA carry ~2^-21 relative error against fp32's 2^-24; at tau = 0.02 it shows in 1e-4
RTOL = 1e-3 if DEVICE == "cuda" else 2e-4


def assert_same_result(fused_result, eager_result, rtol=RTOL):
    for name in FIELDS:
        got, want = getattr(fused_result, name), getattr(eager_result, name)
        assert got.shape == want.shape and got.dtype == torch.float32, name
        atol = rtol * float(want.abs().max()) + 1e-7  # relative to the tensor's own magnitude
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


@needs_kernel
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "-")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}G{}P{}N{}D{}".format(*s))
def test_fused_equals_eager(shape, options):
    options = dict(options)
    if not shape[3] and (options.get("include_gen_negatives") is False or "neg_weight" in options):
        pytest.skip("option needs extra negatives")
    gen, pos, neg = make_inputs(shape, seed=sum(shape))
    if "neg_weight" in options:
        options["neg_weight"] = resolve_weight(options["neg_weight"], neg)
    eager = drift_field_result(gen, pos, neg, backend="eager", **options)
    assert_same_result(drift_field_result(gen, pos, neg, backend="fused", **options), eager)


@needs_kernel
def test_fused_far_from_the_origin_matches_eager():
    """Both centre each group on its columns' mean: data at 1e3 keeps the matmul distances accurate."""
    gen, pos, neg = make_inputs((2, 8, 10, 3, 6), seed=3, offset=1e3)
    eager = drift_field_result(gen, pos, neg, backend="eager")
    assert_same_result(drift_field_result(gen, pos, neg, backend="fused"), eager, rtol=10 * RTOL)


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_are_computed_in_float32(dtype):
    """bf16/fp16 inputs are read as float32: the same field as eager on the same (rounded) values, and
    finite at tau = 0.02 where a bf16 softmax would underflow."""
    gen, pos, neg = make_inputs((2, 8, 12, 4, 24), seed=4, dtype=dtype)
    result = drift_field_result(gen, pos, neg, backend="fused", temperatures=(0.02,))
    eager = drift_field_result(gen.float(), pos.float(), neg.float(), backend="eager", temperatures=(0.02,))
    assert bool(torch.isfinite(result.field).all())
    assert_same_result(result, eager)


@needs_kernel
def test_mixed_input_dtypes():
    """bf16 gen with float32 pos and neg: every column is read as float32, as eager on the rounded gen."""
    gen, pos, neg = make_inputs((2, 6, 7, 3, 5), seed=5)
    assert_same_result(drift_field_result(gen.bfloat16(), pos, neg, backend="fused"),
                       drift_field_result(gen.bfloat16().float(), pos, neg, backend="eager"))


@needs_kernel
def test_loss_and_gradient_match_eager():
    gen, pos, neg = make_inputs((3, 8, 6, 2, 10), seed=6)
    losses, grads = [], []
    for backend in ("eager", "fused"):
        x = gen.clone().requires_grad_(True)
        loss, metrics = drift_loss_with_metrics(x, pos, neg, neg_weight=0.5, backend=backend)
        loss.backward()
        losses.append(loss.detach())
        grads.append(x.grad)
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-4 * float(grads[0].abs().max()))


def test_auto_is_eager_off_cuda_and_env_overrides(monkeypatch):
    gen, pos = torch.zeros(1, 4, 3), torch.zeros(1, 2, 3)
    monkeypatch.delenv(fused.BACKEND_ENV, raising=False)
    assert fused.resolve_backend("auto", gen, pos, None) == "eager"
    assert fused.resolve_backend("fused", gen, pos, None) == "fused"
    monkeypatch.setenv(fused.BACKEND_ENV, "fused")
    assert fused.resolve_backend("auto", gen, pos, None) == "fused"
    assert fused.resolve_backend("eager", gen, pos, None) == "eager"  # an explicit argument wins
    monkeypatch.setenv(fused.BACKEND_ENV, "fast")
    with pytest.raises(ValueError, match="DRIFTING_FIELD_BACKEND='fast'"):
        fused.resolve_backend("auto", gen, pos, None)


def test_cpu_auto_does_not_consult_the_fused_module(monkeypatch):
    """On CPU the default path is today's eager code, with no Triton import and no backend resolution."""
    monkeypatch.delenv(fused.BACKEND_ENV, raising=False)
    monkeypatch.setattr(fused, "resolve_backend", lambda *args: pytest.fail("resolve_backend was called"))
    gen, pos = torch.randn(2, 4, 3), torch.randn(2, 5, 3)
    eager = drift_field_result(gen, pos, backend="eager").field
    torch.testing.assert_close(drift_field_result(gen, pos).field, eager, rtol=0, atol=0)


def test_fused_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match="backend="):
        drift_field_result(torch.zeros(1, 4, 3), torch.zeros(1, 2, 3), backend="triton")
    with pytest.raises(ValueError, match="float64 inputs need backend='eager'"):
        double = torch.zeros(1, 4, 3, dtype=torch.float64)
        drift_field_result(double, double[:, :2], backend="fused")
    with pytest.raises(ValueError, match="use backend='eager' for such groups"):
        drift_field_result(torch.zeros(1, 128, 3), torch.zeros(1, 200, 3), backend="fused")
    assert fused.resolve_backend("auto", torch.zeros(1, 128, 3), torch.zeros(1, 200, 3), None) == "eager"


def test_largest_tile_compiles_for_h100_within_shared_memory():
    """The real (non-interpreted) compile path, without a GPU: Triton compiles for sm_90 on the host, in a
    process without TRITON_INTERPRET. At the largest tile (the ImageNet recipe's G=64, K=144 -> 256) every
    launch must fit an H100's 227 KiB of shared memory per block."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    code = ("import json; from drifting_policy.drift import fused; "
            "print(json.dumps(fused.compiled_shared_memory(64, 64 + 16 + 64, 768)))")
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-2000:]
    shared = json.loads(child.stdout.strip().splitlines()[-1])
    assert set(shared) == {"stats", "rms", "field"}
    assert max(shared.values()) <= 227 * 1024, shared


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("shape", [(512, 64, 80, 0, 256), (64, 64, 64, 16, 768)], ids=["policy", "imagenet"])
def test_auto_is_fused_on_cuda_and_matches_eager_at_benchmark_sizes(shape):
    gen, pos, neg = make_inputs(shape, seed=7)
    weight = None if neg is None else 0.5
    assert fused.resolve_backend("auto", gen, pos, neg) == "fused"
    eager = drift_field_result(gen, pos, neg, neg_weight=weight, backend="eager")
    assert_same_result(drift_field_result(gen, pos, neg, neg_weight=weight, check_finite=False), eager)
    half = drift_field_result(gen.bfloat16(), pos.bfloat16(), neg, neg_weight=weight)
    assert_same_result(half, drift_field_result(gen.bfloat16().float(), pos.bfloat16().float(), neg,
                                                neg_weight=weight, backend="eager"))

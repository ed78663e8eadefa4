"""Training precision: "auto" follows the hardware, bf16 autocast never reaches the drift field."""

import pytest
import torch

from drifting_policy.common.precision import cpu_has_native_bf16, resolve_precision
from drifting_policy.drift import drift_field

SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ZEN2 = "processor\t: 0\nflags\t\t: fpu sse avx2 fma\nbugs\t\t: sysret_ss_attrs\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    assert cpu_has_native_bf16(SAPPHIRE_RAPIDS)
    assert not cpu_has_native_bf16(ZEN2)
    assert not cpu_has_native_bf16("model name: avx512_bf16 in a name is not a flag\n")


def test_explicit_precisions_pass_through_and_bad_ones_name_the_choices():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", cpu) == ("bf16" if cpu_has_native_bf16() else "fp32")
    with pytest.raises(ValueError, match="fp32.*bf16.*auto"):
        resolve_precision("fp16", cpu)


def test_drift_field_is_float32_and_unchanged_under_bf16_autocast():
    torch.manual_seed(0)
    gen, pos = torch.randn(6, 8, 32), torch.randn(6, 2, 32)
    reference = drift_field(gen, pos)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = drift_field(gen, pos)
    assert under_autocast.dtype == torch.float32
    torch.testing.assert_close(under_autocast, reference, rtol=0, atol=0)

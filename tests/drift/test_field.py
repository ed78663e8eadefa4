"""Properties of the drifting field: exactness against Algorithm 2, anti-symmetry, invariances."""

import math

import pytest
import torch

from drifting_policy.drift import drift_field, drift_field_result


def algorithm2_reference(x: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor | None, tau: float,
                         neg_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Direct float64 transcription of the paper's Algorithm 2 for one group (negatives = [x | neg]).

    Extra negatives' affinities are multiplied by their weights after the softmaxes (official CFG code).
    """
    n = x.shape[0]
    q = torch.cat([x, neg]) if neg is not None else x
    dist_pos = torch.cdist(x, pos)
    dist_neg = torch.cdist(x, q)
    dist_neg[:, :n] += torch.eye(n, dtype=x.dtype) * 1e6  # self-exclusion
    logits = torch.cat([-dist_pos, -dist_neg], dim=1) / tau
    rows = torch.softmax(logits, dim=1)
    cols = torch.softmax(logits, dim=0)
    affinity = torch.sqrt(rows * cols)
    if neg_weight is not None:
        affinity[:, pos.shape[0] + n:] *= neg_weight
    a_pos, a_neg = affinity[:, : pos.shape[0]], affinity[:, pos.shape[0]:]
    s_pos, s_neg = a_pos.sum(1, keepdim=True), a_neg.sum(1, keepdim=True)
    return (a_pos * s_neg) @ pos - (a_neg * s_pos) @ q


def sample(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("tau", [0.05, 0.3, 1.0])
@pytest.mark.parametrize("with_neg", [False, True])
def test_matches_algorithm2_per_group(tau, with_neg):
    gen, pos = sample(3, 6, 4, seed=1), sample(3, 5, 4, seed=2) + 0.5
    neg = sample(3, 4, 4, seed=3) - 0.5 if with_neg else None
    field = drift_field(gen, pos, neg, temperatures=(tau,), normalize=False)
    for group in range(3):
        expected = algorithm2_reference(gen[group], pos[group], None if neg is None else neg[group], tau)
        torch.testing.assert_close(field[group], expected, rtol=1e-9, atol=1e-12)


def test_several_temperatures_sum_when_unnormalised():
    gen, pos = sample(2, 5, 3, seed=4), sample(2, 7, 3, seed=5)
    total = drift_field(gen, pos, temperatures=(0.1, 0.5), normalize=False)
    parts = sum(drift_field(gen, pos, temperatures=(t,), normalize=False) for t in (0.1, 0.5))
    torch.testing.assert_close(total, parts)


@pytest.mark.parametrize("normalize", [False, True])
def test_anti_symmetry_swapping_positives_and_negatives_flips_the_field(normalize):
    gen, p, q = sample(2, 6, 3, seed=6), sample(2, 8, 3, seed=7) + 1.0, sample(2, 8, 3, seed=8) - 1.0
    options = dict(temperatures=(0.1, 0.4), normalize=normalize, include_gen_negatives=False)
    forward = drift_field(gen, p, q, **options)
    swapped = drift_field(gen, q, p, **options)
    torch.testing.assert_close(forward, -swapped, rtol=1e-9, atol=1e-12)
    assert forward.abs().max() > 1e-3  # the property is not satisfied trivially


def test_field_vanishes_when_generated_and_data_distributions_agree():
    def mean_norm(size):
        gen, pos = sample(16, size, 2, seed=9), sample(16, size, 2, seed=10)
        return drift_field(gen, pos, temperatures=(0.5,), normalize=False).norm(dim=-1).mean()

    small, large = mean_norm(16), mean_norm(512)
    shifted = drift_field(sample(16, 512, 2, seed=9), sample(16, 512, 2, seed=10) + 2.0,
                          temperatures=(0.5,), normalize=False).norm(dim=-1).mean()
    assert large < 0.5 * small  # the finite-sample field shrinks with sample size
    assert large < 0.2 * shifted  # and is far below the field of a mismatched pair


def test_groups_are_independent_without_normalisation():
    gen, pos = sample(3, 5, 2, seed=11), sample(3, 6, 2, seed=12)
    before = drift_field(gen, pos, normalize=False)
    gen2, pos2 = gen.clone(), pos.clone()
    gen2[2] += 3.0
    pos2[2] *= 5.0
    after = drift_field(gen2, pos2, normalize=False)
    torch.testing.assert_close(after[:2], before[:2])
    assert not torch.allclose(after[2], before[2])


@pytest.mark.parametrize("normalize", [False, True])
def test_permutation_equivariance_within_a_group(normalize):
    gen, pos = sample(2, 7, 3, seed=13), sample(2, 9, 3, seed=14)
    perm_gen, perm_pos = torch.randperm(7), torch.randperm(9)
    field = drift_field(gen, pos, normalize=normalize)
    permuted = drift_field(gen[:, perm_gen], pos[:, perm_pos], normalize=normalize)
    torch.testing.assert_close(permuted, field[:, perm_gen])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_give_finite_fp32_fields(dtype):
    gen, pos = sample(4, 8, 16, seed=15, dtype=torch.float32), sample(4, 8, 16, seed=16, dtype=torch.float32)
    gen_low, pos_low = gen.to(dtype), pos.to(dtype)
    field = drift_field(gen_low, pos_low)
    reference = drift_field(gen_low.float(), pos_low.float())
    assert field.dtype == torch.float32 and torch.isfinite(field).all()
    torch.testing.assert_close(field, reference)


def test_normalised_field_is_invariant_to_offset_and_scale():
    gen, pos = sample(4, 8, 5, seed=17, dtype=torch.float32), sample(4, 10, 5, seed=18, dtype=torch.float32)
    offset, scale = 1.0e4, 100.0
    base = drift_field(gen, pos)
    moved = drift_field(gen * scale + offset, pos * scale + offset)
    torch.testing.assert_close(moved / scale, base, rtol=1e-3, atol=1e-4)


def test_normalised_field_has_unit_rms_per_temperature_in_feature_units():
    gen, pos = sample(8, 8, 6, seed=19), sample(8, 8, 6, seed=20) + 0.3
    result = drift_field_result(gen, pos, temperatures=(0.2,))
    feature_units = result.field * math.sqrt(6) / result.scale
    torch.testing.assert_close(feature_units.square().mean(), torch.tensor(1.0, dtype=torch.float64))


def test_weighted_extra_negatives_match_the_weighted_reference():
    gen, pos, neg = sample(2, 6, 3, seed=21), sample(2, 6, 3, seed=22), sample(2, 4, 3, seed=23)
    weight = torch.rand(2, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    field = drift_field(gen, pos, neg, neg_weight=weight, temperatures=(0.4,), normalize=False)
    for group in range(2):
        expected = algorithm2_reference(gen[group], pos[group], neg[group], 0.4, weight[group])
        torch.testing.assert_close(field[group], expected)


def test_heavier_extra_negatives_push_harder():
    gen, pos = sample(1, 32, 2, seed=31), sample(1, 32, 2, seed=32)
    neg = sample(1, 16, 2, seed=33) + torch.tensor([1.0, 0.0], dtype=torch.float64)
    away = [drift_field(gen, pos, neg, neg_weight=w, normalize=False)[..., 0].mean() for w in (0.5, 4.0)]
    assert away[1] < away[0] < 0  # the field points away from the negatives, more so when they weigh more


def test_field_pushes_generated_samples_towards_positives():
    gen = sample(1, 64, 2, seed=24) * 0.3
    pos = sample(1, 64, 2, seed=25) * 0.3 + torch.tensor([2.0, 0.0], dtype=torch.float64)
    field = drift_field(gen, pos, temperatures=(0.5,), normalize=False)
    assert (field[..., 0] > 0).float().mean() > 0.95


def test_unequal_attraction_breaks_anti_symmetry():
    gen, p, q = sample(1, 6, 3, seed=26), sample(1, 8, 3, seed=27) + 1.0, sample(1, 8, 3, seed=28) - 1.0
    options = dict(temperatures=(0.3,), normalize=False, include_gen_negatives=False, attraction=1.5)
    assert not torch.allclose(drift_field(gen, p, q, **options), -drift_field(gen, q, p, **options))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(gen=torch.zeros(2, 1, 3), pos=torch.zeros(2, 4, 3)), "G=1"),
        (dict(gen=torch.zeros(2, 4, 3), pos=torch.zeros(3, 4, 3)), "pos"),
        (dict(gen=torch.zeros(2, 4, 3), pos=torch.zeros(2, 4, 2)), "pos"),
        (dict(gen=torch.zeros(2, 4, 3), pos=torch.zeros(2, 0, 3)), "P=0"),
        (dict(gen=torch.zeros(4, 3), pos=torch.zeros(4, 3)), r"\[B, G, D\]"),
        (dict(gen=torch.zeros(2, 4, 3), pos=torch.zeros(2, 4, 3), neg=torch.zeros(2, 4, 5)), "neg"),
        (dict(gen=torch.zeros(2, 4, 3), pos=torch.full((2, 4, 3), float("nan"))), "NaN"),
        (dict(gen=torch.zeros(2, 4, 3), pos=torch.zeros(2, 4, 3), temperatures=()), "temperatures"),
        (dict(gen=torch.zeros(2, 4, 3), pos=torch.zeros(2, 4, 3), kernel_norm="cols"), "kernel_norm"),
        (dict(gen=torch.zeros(2, 4, 3), pos=torch.zeros(2, 4, 3), neg_weight=1.0), "neg_weight"),
        (dict(gen=torch.zeros(2, 4, 3), pos=torch.zeros(2, 4, 3), neg=torch.zeros(2, 4, 3),
              neg_weight=torch.ones(3, 4)), "neg_weight"),
    ],
)
def test_bad_inputs_raise_value_errors_naming_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        drift_field(**kwargs)


def test_no_gradient_flows_through_the_field():
    gen = sample(2, 4, 3, seed=29).requires_grad_()
    field = drift_field(gen, sample(2, 5, 3, seed=30))
    assert not field.requires_grad


def test_diagnostics_measure_distance_and_spread():
    gen = torch.zeros(1, 4, 2, dtype=torch.float64)
    gen[0, :, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0])
    pos = torch.tensor([[[0.0, 2.0]]], dtype=torch.float64)
    result = drift_field_result(gen, pos, normalize=False)
    expected_nearest = torch.tensor([2.0, 5**0.5, 8**0.5, 13**0.5], dtype=torch.float64).mean()
    torch.testing.assert_close(result.nearest_pos, expected_nearest)
    torch.testing.assert_close(result.gen_spread, torch.tensor(20.0 / 12.0, dtype=torch.float64))


def test_affinity_floor_pulls_towards_the_positive_mean_and_can_be_disabled():
    """With many samples the official floor reverses the field between two distant modes (toy finding)."""
    gen = sample(1, 256, 1, seed=34) * 0.3
    modes = torch.where(torch.arange(256) % 2 == 0, 3.0, -3.0).to(torch.float64)
    pos = (modes + 0.3 * sample(256, seed=35)).reshape(1, 256, 1)
    outward = {}
    for floor in (None, 1e-3):
        field = drift_field(gen, pos, temperatures=(0.05,), affinity_floor=floor)
        outward[floor] = (field * gen.sign()).mean() / field.square().mean().sqrt()
    assert outward[None] > 0 > outward[1e-3]
    with pytest.raises(ValueError, match="affinity_floor"):
        drift_field(gen, pos, affinity_floor=-1.0)


def test_per_group_weight_must_be_explicit_about_its_axis():
    gen, pos, neg = sample(3, 4, 2, seed=36), sample(3, 4, 2, seed=37), sample(3, 3, 2, seed=38)
    weight = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\[B, 1\]"):
        drift_field(gen, pos, neg, neg_weight=weight)  # [B] with B == N: ambiguous, refused
    per_group = drift_field(gen, pos, neg, neg_weight=weight[:, None], normalize=False)
    expanded = drift_field(gen, pos, neg, neg_weight=weight[:, None].expand(3, 3), normalize=False)
    torch.testing.assert_close(per_group, expanded)

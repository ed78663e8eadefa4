"""Drift losses: gradients, stop-gradient semantics, multi-feature sums."""

import math

import pytest
import torch

from drifting_policy.drift import (
    drift_field_result,
    drift_loss,
    drift_loss_with_metrics,
    multi_feature_drift_loss,
)


def sample(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("normalize", [False, True])
def test_gradient_matches_the_analytic_value(normalize):
    gen = sample(3, 5, 4, seed=1).requires_grad_()
    pos = sample(3, 6, 4, seed=2)
    drift_loss(gen, pos, normalize=normalize, temperatures=(0.1, 0.3)).backward()
    result = drift_field_result(gen, pos, normalize=normalize, temperatures=(0.1, 0.3))
    units = math.sqrt(4) / result.scale if normalize else 1.0
    # loss = mean(|units * V|^2) with V held fixed, so d loss / d gen = -2 units^2 V / numel
    expected = -2.0 * units**2 * result.field / gen.numel()
    torch.testing.assert_close(gen.grad, expected)


def test_loss_value_is_the_mean_squared_normalised_drift():
    """The loss is mean |V|^2 in the normalised units x * sqrt(D) / s, V the sum over temperatures of unit-RMS
    fields: 3 plus twice the temperatures' cross-correlations, computed here from the field itself."""
    gen, pos = sample(4, 8, 3, seed=3), sample(4, 8, 3, seed=4)
    temperatures = (0.02, 0.05, 0.2)
    loss = drift_loss(gen, pos, temperatures=temperatures)
    result = drift_field_result(gen, pos, temperatures=temperatures)
    normalised_field = result.field * math.sqrt(3) / result.scale  # [B, G, D]
    expected = normalised_field.square().sum(-1).mean() / 3  # mean over groups, rows and the D dims
    torch.testing.assert_close(loss, expected)
    assert abs(float(loss) - 3.0) > 0.1  # the fields of different temperatures are correlated


def test_positives_receive_no_gradient():
    gen = sample(2, 4, 3, seed=5).requires_grad_()
    pos = sample(2, 4, 3, seed=6).requires_grad_()
    drift_loss(gen, pos).backward()
    assert pos.grad is None and gen.grad is not None


def test_metrics_are_detached_scalars_with_one_rms_per_temperature():
    gen = sample(2, 4, 3, seed=7).requires_grad_()
    _, metrics = drift_loss_with_metrics(gen, sample(2, 4, 3, seed=8), temperatures=(0.05, 0.2))
    assert set(metrics) == {"feature_scale", "nearest_pos_dist", "gen_spread", "drift_rms/tau_0.05",
                            "drift_rms/tau_0.2"}
    assert all(value.dim() == 0 and not value.requires_grad for value in metrics.values())


def test_multi_feature_loss_sums_independent_losses():
    gen = {"a": sample(2, 4, 3, seed=9), "b": sample(6, 4, 8, seed=10)}
    pos = {"a": sample(2, 5, 3, seed=11), "b": sample(6, 3, 8, seed=12)}
    total, metrics = multi_feature_drift_loss(gen, pos, temperatures=(0.1,))
    separate = drift_loss(gen["a"], pos["a"], temperatures=(0.1,)) + drift_loss(gen["b"], pos["b"],
                                                                                 temperatures=(0.1,))
    torch.testing.assert_close(total, separate)
    assert "a/feature_scale" in metrics and "b/loss" in metrics


def test_multi_feature_loss_rejects_mismatched_keys_and_names_the_feature():
    with pytest.raises(ValueError, match="keys"):
        multi_feature_drift_loss({"a": sample(1, 4, 2)}, {"b": sample(1, 4, 2)})
    with pytest.raises(ValueError, match="feature 'a'"):
        multi_feature_drift_loss({"a": sample(1, 4, 2)}, {"a": sample(1, 4, 3)})


def test_gradient_descent_on_the_loss_moves_samples_onto_the_data():
    torch.manual_seed(0)
    gen = (torch.randn(1, 64, 2) * 0.2 + torch.tensor([3.0, 0.0])).requires_grad_()
    data = torch.randn(1, 64, 2)
    optimizer = torch.optim.SGD([gen], lr=0.05 * gen.numel())
    for _ in range(300):
        optimizer.zero_grad()
        drift_loss(gen, data, temperatures=(0.2,)).backward()
        optimizer.step()
    assert gen.detach().mean(dim=1).norm() < 0.3  # the cloud's centre reached the data's centre
    assert 0.5 < gen.detach().std() < 1.5  # and it spread like the data instead of collapsing

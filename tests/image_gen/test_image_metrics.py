"""Metrics on known inputs: identical sets score ~0, shifted sets more; Frechet formula; P/R; accuracy."""

import pytest
import torch

from image_gen.metrics import (
    class_accuracy,
    frechet_distance,
    kernel_inception_distance,
    load_inception,
    nearest_train_distance,
    precision_recall,
)


def gaussian(n=2000, d=8, shift=0.0, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + shift


def test_frechet_distance_identical_and_shifted():
    x = gaussian()
    assert abs(frechet_distance(x, x)) < 1e-6
    # Same covariance, mean shifted by 1 in each of 8 dims: FD = |dmu|^2 = 8 (+ sampling noise)
    assert frechet_distance(x, x + 1.0) == pytest.approx(8.0, abs=1e-6)
    assert frechet_distance(gaussian(seed=0), gaussian(seed=1)) < 0.1
    assert frechet_distance(gaussian(seed=0), 2.0 * gaussian(seed=1)) > 5.0  # variance x4: tr term 8*(1+4-4)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_shift():
    same = kernel_inception_distance(gaussian(seed=0), gaussian(seed=1), num_subsets=5, subset_size=300)
    small = kernel_inception_distance(
        gaussian(seed=0), gaussian(shift=0.5, seed=1), num_subsets=5, subset_size=300
    )
    large = kernel_inception_distance(
        gaussian(seed=0), gaussian(shift=2.0, seed=1), num_subsets=5, subset_size=300
    )
    assert abs(same) < 0.05 and small > 0.1 and large > small


def test_precision_recall_extremes():
    x = gaussian(n=500)
    assert precision_recall(x, x) == (1.0, 1.0)
    precision, recall = precision_recall(x, gaussian(n=500, shift=50.0, seed=1))
    assert precision == 0.0 and recall == 0.0
    collapsed = x[:1].repeat(500, 1) + 1e-3 * gaussian(n=500, seed=2)  # mode collapse: precise, no recall
    precision, recall = precision_recall(x, collapsed)
    assert precision == 1.0 and recall < 0.1


def test_class_accuracy_and_nearest_train_distance():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    assert class_accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    train = torch.zeros(3, 1, 2, 2)
    train[1] += 1.0
    distances = nearest_train_distance(torch.stack([train[1], train[1] + 0.5]), train)
    torch.testing.assert_close(distances, torch.tensor([0.0, 1.0]))


def test_inception_without_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights cannot be downloaded offline"):
        load_inception(tmp_path / "missing.pt")

"""Confidence intervals used by every results table: percentile bootstrap of a mean, Wilson for rates."""

from __future__ import annotations

import math

import numpy as np

WILSON_Z = 1.959964  # two-sided 95% normal quantile


def bootstrap_mean_ci(values: np.ndarray, n_bootstrap: int = 2000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (fixed seed, so a summary is reproducible)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), float(values.mean())
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_bootstrap, len(values)))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def two_level_bootstrap(values: np.ndarray, n_bootstrap: int = 4000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Interval of the mean of a [training seeds, test seeds] array, resampling both levels: training seeds,
    then the test seeds inside each, so it carries both sources of variance."""
    values = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n_train, n_test = values.shape
    rows = rng.integers(0, n_train, size=(n_bootstrap, n_train))               # [B, n_train]
    cols = rng.integers(0, n_test, size=(n_bootstrap, n_train, n_test))        # [B, n_train, n_test]
    means = values[rows[..., None], cols].mean(axis=(1, 2))                   # [B]
    tail = (1.0 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def wilson_interval(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (well behaved at 0% and 100%)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)

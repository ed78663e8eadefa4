import numpy as np
import pytest

from drifting_policy.common.stats import bootstrap_mean_ci, two_level_bootstrap


def width(interval: tuple[float, float]) -> float:
    return interval[1] - interval[0]


def test_two_level_bootstrap_carries_the_training_seed_variance():
    rng = np.random.default_rng(0)
    test_noise = rng.normal(size=(5, 50))                         # [training seeds, test seeds]
    offsets = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])[:, None]      # each training seed shifts every test seed
    pooled = width(bootstrap_mean_ci((test_noise + offsets).ravel(), 4000))
    assert width(two_level_bootstrap(test_noise + offsets)) > 2 * pooled
    # no training-seed effect: both levels are exchangeable and the two intervals agree
    iid = width(two_level_bootstrap(test_noise))
    assert iid == pytest.approx(width(bootstrap_mean_ci(test_noise.ravel(), 4000)), rel=0.3)


def test_two_level_bootstrap_covers_the_true_mean():
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(100):
        values = rng.normal(size=(3, 1)) * 0.3 + rng.normal(size=(3, 40))  # true mean 0
        low, high = two_level_bootstrap(values, n_bootstrap=1000, seed=int(rng.integers(1 << 30)))
        covered += low <= 0.0 <= high
    assert covered >= 75  # 3 training seeds: a little under 95%; pooling the test seeds would give ~63

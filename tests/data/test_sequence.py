"""SequenceSampler windows and padding (exact rows), and the episode split."""

from __future__ import annotations

import numpy as np
import pytest

from drifting_policy.data.sequence import SequenceSampler, episode_split


def test_exact_rows_with_padding_at_both_ends():
    # pad_before = obs_horizon - 1 = 1, pad_after = action_horizon - 1 = 1
    sampler = SequenceSampler(np.array([5, 9]), prediction_horizon=4, obs_horizon=2, action_horizon=2)
    rows = [sampler.rows(i).tolist() for i in range(len(sampler))]
    assert rows == [
        [0, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 4],  # episode 0: rows 0..4
        [5, 5, 6, 7], [5, 6, 7, 8], [6, 7, 8, 8],  # episode 1: rows 5..8
    ]
    assert sampler.window_episodes.tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_default_horizons_first_and_last_window():
    sampler = SequenceSampler(np.array([20, 50]))  # 16 / 2 / 8
    assert (sampler.pad_before, sampler.pad_after) == (1, 7)
    first = sampler.rows(0)
    assert first.tolist() == [0] + list(range(15))  # first obs repeated once
    last_of_episode0 = sampler.rows(int(np.flatnonzero(sampler.window_episodes == 0)[-1]))
    # the current step (index obs_horizon - 1) still has action_horizon real actions
    assert last_of_episode0[1:9].tolist() == list(range(12, 20))
    assert last_of_episode0[9:].tolist() == [19] * 7
    assert len(sampler) == (20 - 7) + (30 - 7)


def _dp_windows(episode_ends, horizon, pad_before, pad_after):
    """Diffusion Policy's create_indices + sample_sequence, as buffer rows per window."""
    windows, start = [], 0
    for end in episode_ends:
        length = end - start
        for idx in range(-pad_before, length - horizon + pad_after + 1):
            lo, hi = max(idx, 0) + start, min(idx + horizon, length) + start
            sample = list(range(lo, hi))
            before, after = lo - (idx + start), (idx + horizon + start) - hi
            windows.append([sample[0]] * before + sample + [sample[-1]] * after)
        start = end
    return windows


def test_matches_diffusion_policy_indices():
    ends = np.cumsum([1, 7, 16, 23, 40])
    sampler = SequenceSampler(ends, prediction_horizon=16, obs_horizon=2, action_horizon=8)
    ours = [sampler.rows(i).tolist() for i in range(len(sampler))]
    assert ours == _dp_windows(ends.tolist(), 16, 1, 7)


def test_episode_mask_and_sample():
    ends = np.array([5, 9, 14])
    sampler = SequenceSampler(ends, 4, 2, 2, episode_mask=np.array([False, True, False]))
    assert set(sampler.window_episodes.tolist()) == {1}
    data = {"obs": np.arange(14) * 10, "action": np.arange(14)}
    sample = sampler.sample(data, 0, obs_keys=("obs",))
    assert sample["obs"].tolist() == [50, 50] and sample["action"].tolist() == [5, 5, 6, 7]
    with pytest.raises(IndexError):
        sampler.rows(len(sampler))


def test_horizon_checks():
    with pytest.raises(ValueError, match="prediction_horizon=8"):
        SequenceSampler(np.array([10]), prediction_horizon=8, obs_horizon=2, action_horizon=8)
    with pytest.raises(ValueError, match="obs_horizon must be >= 1"):
        SequenceSampler(np.array([10]), obs_horizon=0)


def test_episode_split():
    train, val = episode_split(200, val_ratio=0.02, max_train_episodes=90, seed=42)
    assert val.sum() == 4 and train.sum() == 90 and not (train & val).any()
    again = episode_split(200, val_ratio=0.02, max_train_episodes=90, seed=42)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    other = episode_split(200, val_ratio=0.02, max_train_episodes=90, seed=43)
    assert not np.array_equal(train, other[0])
    train, val = episode_split(5, val_ratio=0.01)
    assert val.sum() == 1 and train.sum() == 4  # at least one validation episode
    train, val = episode_split(1, val_ratio=0.5)
    assert train.sum() == 1 and val.sum() == 0  # never leave training empty
    with pytest.raises(ValueError, match="val_ratio"):
        episode_split(10, val_ratio=1.0)

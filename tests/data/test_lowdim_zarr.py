"""LowDimZarrDataset on a synthetic block-pushing-shaped store: keys, shapes, windows, split."""

from __future__ import annotations

import numpy as np
import pytest

from drifting_policy.data import LowDimZarrDataset, ReplayBuffer

N_EPISODES = 10
OBS_KEYS = ("block_pose", "effector_pos")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("lowdim") / "synthetic.zarr"
    buffer = ReplayBuffer.create(path)
    for episode in range(N_EPISODES):
        length = 12 + episode
        steps = np.arange(length, dtype=np.float64)
        buffer.add_episode({
            "block_pose": np.broadcast_to(episode + steps[:, None, None] / 100, (length, 2, 3)).copy(),
            "effector_pos": np.stack([np.full(length, episode), steps], axis=1).astype(np.float32),
            "target_pose": np.zeros((length, 2, 3), np.float32),
            "action": np.stack([np.full(length, episode), steps], axis=1).astype(np.float32),
        })
    return path


def test_samples_have_the_env_keys_and_shapes(store):
    dataset = LowDimZarrDataset(store, OBS_KEYS, obs_horizon=2, action_horizon=4, prediction_horizon=8)
    item = dataset[0]
    assert {k: (v.shape, v.dtype) for k, v in item["obs"].items()} == {
        "block_pose": ((2, 2, 3), np.float32), "effector_pos": ((2, 2), np.float32)}
    assert item["action"].shape == (8, 2) and item["action"].dtype == np.float32
    assert dataset.shape_meta == {"obs": {"block_pose": {"shape": (2, 3), "type": "low_dim"},
                                          "effector_pos": {"shape": (2,), "type": "low_dim"}},
                                  "action": {"shape": (2,)}}
    assert sorted(dataset.normalizer_data()) == ["action", "block_pose", "effector_pos"]  # target_pose unread


def test_windows_stay_in_one_episode_with_edge_padding(store):
    dataset = LowDimZarrDataset(store, OBS_KEYS, obs_horizon=2, action_horizon=4, prediction_horizon=8,
                                val_ratio=0.0)
    for index in range(len(dataset)):
        item = dataset[index]
        episodes = np.concatenate([item["obs"]["effector_pos"][:, 0], item["action"][:, 0]])
        assert len(set(episodes.tolist())) == 1  # never crosses an episode boundary
        np.testing.assert_array_equal(item["obs"]["effector_pos"][1], item["action"][1])  # same step
    first = dataset[0]  # pad_before = 1: the first observation repeats the episode's first step
    np.testing.assert_array_equal(first["obs"]["effector_pos"][:, 1], [0, 0])
    lengths = 12 + np.arange(N_EPISODES)
    assert len(dataset) == int(np.sum(lengths - 8 + 1 + 1 + 3))  # DP: length - P + 1 + pad_before + pad_after


def test_train_and_val_split_by_episode(store):
    train = LowDimZarrDataset(store, OBS_KEYS, val_ratio=0.2, seed=3)
    val = train.get_validation_dataset()
    assert len(val.episode_ids) == 2 and not set(train.episode_ids) & set(val.episode_ids)
    train_episodes = set(np.unique(train.arrays["action"][:, 0]).tolist())
    assert train_episodes == set(train.episode_ids.tolist())
    with pytest.raises(ValueError, match="normaliser"):
        val.normalizer_data()


def test_errors_name_the_fix(store):
    with pytest.raises(ValueError, match="obs_keys"):
        LowDimZarrDataset(store, ("action",))
    with pytest.raises(ValueError, match="split"):
        LowDimZarrDataset(store, OBS_KEYS, split="test")
    with pytest.raises(Exception, match="no_such_key"):
        LowDimZarrDataset(store, ("no_such_key",))

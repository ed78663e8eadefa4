"""PushTDataset on a synthetic store in DP's layout: sample keys/shapes/dtypes, split, collate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drifting_policy.data import PushTDataset, ReplayBuffer
from drifting_policy.policy.normalizer import Normalizer

N_EPISODES = 12


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("pusht") / "synthetic.zarr"
    buffer = ReplayBuffer.create(path)
    rng = np.random.default_rng(0)
    for episode in range(N_EPISODES):
        length = 18 + episode
        state = rng.uniform(0, 512, (length, 5)).astype(np.float32)
        state[:, 4] = episode  # tag: which episode a row came from
        frame_values = ((np.arange(length) + 10 * episode) % 256).astype(np.uint8)  # cheap to compress
        buffer.add_episode({
            "state": state,
            "keypoint": rng.uniform(0, 512, (length, 9, 2)).astype(np.float32),
            "action": rng.uniform(0, 512, (length, 2)).astype(np.float32),
            "img": np.broadcast_to(frame_values[:, None, None, None], (length, 96, 96, 3)),
            "n_contacts": np.zeros((length, 1), np.float32),
        })
    return path


EXPECTED = {
    "keypoints": {"keypoint": ((2, 9, 2), np.float32), "agent_pos": ((2, 2), np.float32)},
    "state": {"state": ((2, 5), np.float32)},
    "image": {"image": ((2, 96, 96, 3), np.uint8), "agent_pos": ((2, 2), np.float32)},
}


@pytest.mark.parametrize("obs_type", sorted(EXPECTED))
def test_sample_shapes_and_dtypes(store, obs_type):
    dataset = PushTDataset(store, obs_type=obs_type, val_ratio=0.2, seed=0)
    sample = dataset[0]
    assert set(sample["obs"]) == set(EXPECTED[obs_type])
    for key, (shape, dtype) in EXPECTED[obs_type].items():
        assert sample["obs"][key].shape == shape and sample["obs"][key].dtype == dtype
    assert sample["action"].shape == (16, 2) and sample["action"].dtype == np.float32
    meta = dataset.shape_meta
    expected_shapes = {key: shape[1:] for key, (shape, _) in EXPECTED[obs_type].items()}
    assert {key: value["shape"] for key, value in meta["obs"].items()} == expected_shapes
    assert meta["action"]["shape"] == (2,)
    assert {v["type"] for v in meta["obs"].values()} <= {"low_dim", "rgb"}
    assert "image" not in dataset.normalizer_data()


def test_agent_pos_is_state_xy_and_window_alignment(store):
    keypoints = PushTDataset(store, obs_type="keypoints", val_ratio=0.2, seed=0)
    state = PushTDataset(store, obs_type="state", val_ratio=0.2, seed=0)
    for i in (0, 5, len(state) - 1):
        np.testing.assert_array_equal(keypoints[i]["obs"]["agent_pos"], state[i]["obs"]["state"][:, :2])
    first = state[0]  # first window of an episode: the first observation is repeated
    np.testing.assert_array_equal(first["obs"]["state"][0], first["obs"]["state"][1])
    np.testing.assert_array_equal(first["action"][0], first["action"][1])


def test_split_disjoint_and_max_train(store):
    train = PushTDataset(store, obs_type="state", val_ratio=0.25, max_train_episodes=5, seed=3)
    val = train.get_validation_dataset()
    train_eps = set(np.unique(train.arrays["state"][:, 4]).astype(int))
    val_eps = set(np.unique(val.arrays["state"][:, 4]).astype(int))
    assert len(train_eps) == 5 and len(val_eps) == 3 and not train_eps & val_eps
    assert train_eps == set(train.episode_ids.tolist()) and val_eps == set(val.episode_ids.tolist())
    with pytest.raises(ValueError, match="train split"):
        val.normalizer_data()


def test_default_collate_batch_format(store):
    dataset = PushTDataset(store, obs_type="image", val_ratio=0.2, seed=0)
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True,
                                                  generator=torch.Generator().manual_seed(0))))
    assert batch["obs"]["image"].shape == (4, 2, 96, 96, 3) and batch["obs"]["image"].dtype == torch.uint8
    assert batch["obs"]["agent_pos"].shape == (4, 2, 2) and batch["obs"]["agent_pos"].dtype == torch.float32
    assert batch["action"].shape == (4, 16, 2) and batch["action"].dtype == torch.float32
    norm = Normalizer().fit(dataset.normalizer_data(), image_keys=("image",))
    assert norm.normalize("action", batch["action"]).abs().max() <= 1.0 + 1e-6


def test_bad_arguments(store):
    with pytest.raises(ValueError, match="obs_type"):
        PushTDataset(store, obs_type="pixels")
    with pytest.raises(ValueError, match="split"):
        PushTDataset(store, split="test")


def test_reads_dp_style_v2_store_with_float_images(tmp_path):
    """DP's pusht_cchi_v7_replay.zarr: zarr format 2, blosc, float32 images in [0, 255]."""
    import numcodecs
    import zarr

    path = tmp_path / "dp.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    blosc = numcodecs.Blosc(cname="lz4", clevel=5)
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 96, 96, 3)).astype(np.float32)
    arrays = {"img": img, "state": rng.uniform(0, 512, (40, 5)).astype(np.float32),
              "action": rng.uniform(0, 512, (40, 2)).astype(np.float32)}
    for key, value in arrays.items():
        root.require_group("data").create_array(key, data=value, chunks=value.shape, compressors=blosc)
    root.require_group("meta").create_array("episode_ends", data=np.array([20, 40], dtype=np.int64))
    dataset = PushTDataset(path, obs_type="image", val_ratio=0.0)
    assert dataset.arrays["image"].dtype == np.uint8
    np.testing.assert_array_equal(dataset.arrays["image"], img.astype(np.uint8))
    assert len(dataset) == 2 * (20 - 7)

"""LeRobotFolderDataset and the zarr -> LeRobot export: the round trip gives the zarr's windows back."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lerobot_fakes import FPS, LENGTHS, write_lerobot, write_pusht_zarr

from drifting_policy.data.lerobot import LeRobotFolderDataset
from drifting_policy.data.lerobot_export import export
from drifting_policy.data.lerobot_format import read_lerobot
from drifting_policy.data.pusht import PushTDataset

# H.264 (yuv444p, CRF 15) is lossy: on these 16x16 test frames (a steep gradient, a sharp moving square) the
# mean absolute pixel error is ~1.8 of 255 (~0.2 on Push-T's 96x96 renders); single edge pixels differ more.
IMAGE_MEAN_ABS_TOLERANCE = 3.0
KEYPOINT_FEATURES = {"keypoint": "observation.environment_state", "agent_pos": "observation.state"}
KEYPOINT_META = {"obs": {"keypoint": {"shape": [9, 2], "type": "low_dim"},
                         "agent_pos": {"shape": [2], "type": "low_dim"}}, "action": {"shape": [2]}}
IMAGE_FEATURES = {"image": "observation.image", "agent_pos": "observation.state"}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """(zarr store, its LeRobot export)."""
    folder = tmp_path_factory.mktemp("lerobot")
    zarr_path = write_pusht_zarr(folder / "pusht.zarr")
    return zarr_path, export(zarr_path, folder / "pusht_lerobot", progress=False)


def test_round_trip_keypoint_windows_equal_the_zarr_dataset(stores):
    zarr_path, root = stores
    ours = LeRobotFolderDataset(root, KEYPOINT_FEATURES, shape_meta=KEYPOINT_META, val_ratio=0.34,
                                progress=False)
    reference = PushTDataset(zarr_path, obs_type="keypoints", val_ratio=0.34)
    assert len(ours) == len(reference) > 0
    np.testing.assert_array_equal(ours.episode_ids, reference.episode_ids)
    for index in range(len(ours)):
        got, want = ours[index], reference[index]
        for key in ("keypoint", "agent_pos"):
            assert got["obs"][key].dtype == np.float32
            np.testing.assert_array_equal(got["obs"][key], want["obs"][key])
        np.testing.assert_array_equal(got["action"], want["action"])
    assert ours.shape_meta == reference.shape_meta
    for key, values in reference.normalizer_data().items():
        np.testing.assert_array_equal(ours.normalizer_data()[key], values)
    val, val_reference = ours.get_validation_dataset(), reference.get_validation_dataset()
    np.testing.assert_array_equal(val.episode_ids, val_reference.episode_ids)
    assert len(val) == len(val_reference) and val.data is ours.data  # the folder is read once


def test_round_trip_images_within_codec_loss(stores):
    zarr_path, root = stores
    ours = LeRobotFolderDataset(root, IMAGE_FEATURES, val_ratio=0.0, progress=False)
    reference = PushTDataset(zarr_path, obs_type="image", val_ratio=0.0)
    assert ours.shape_meta == reference.shape_meta  # image: rgb [16, 16, 3]
    got, want = ours.arrays["image"], reference.arrays["image"]
    assert got.dtype == np.uint8 and got.shape == want.shape
    errors = np.abs(got.astype(np.int16) - want.astype(np.int16))
    assert errors.mean() < IMAGE_MEAN_ABS_TOLERANCE
    # every decoded frame is nearest to its own source frame: no shift by one at episode boundaries
    distances = np.abs(got[:, None].astype(np.int16) - want[None].astype(np.int16)).mean(axis=(2, 3, 4))
    np.testing.assert_array_equal(distances.argmin(axis=1), np.arange(len(got)))


def test_episode_bounds_fps_and_timestamps(stores):
    _, root = stores
    data = read_lerobot(root, ["action", "observation.image"], progress=False)
    np.testing.assert_array_equal(data.episode_ends, np.cumsum(LENGTHS))
    assert data.fps == FPS
    frame_index = np.concatenate([np.arange(n) for n in LENGTHS])
    np.testing.assert_allclose(data.timestamps, frame_index / FPS, atol=1e-6)
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"]) == (len(LENGTHS), sum(LENGTHS))
    assert info["features"]["observation.image"]["info"]["video.fps"] == FPS
    assert data.provenance["seed"] == 0 and data.provenance["expert_version"] == "test"


def test_video_episodes_located_by_from_timestamp(tmp_path):
    """Episodes share one mp4; episode e starts at the sum of the earlier lengths / fps."""
    import pyarrow.parquet as pq

    root = write_lerobot(tmp_path / "ds")
    table = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    starts = np.concatenate([[0], np.cumsum(LENGTHS)[:-1]])
    np.testing.assert_allclose(table["videos/observation.image/from_timestamp"], starts / FPS)
    np.testing.assert_allclose(table["videos/observation.image/to_timestamp"], np.cumsum(LENGTHS) / FPS)
    assert table["dataset_from_index"] == starts.tolist() and table["length"] == list(LENGTHS)


def test_shape_mismatch_and_unknown_feature_name_the_fix(stores):
    _, root = stores
    meta = {"obs": {"keypoint": {"shape": [8, 2], "type": "low_dim"}}}
    with pytest.raises(ValueError, match=r"task.shape_meta.obs.keypoint.shape=\[8, 2\].*has 18 values"):
        LeRobotFolderDataset(root, {"keypoint": "observation.environment_state"}, shape_meta=meta,
                             progress=False)
    with pytest.raises(ValueError, match=r"info.json has no feature \['observation.wrist'\].*task.dataset"):
        LeRobotFolderDataset(root, {"image": "observation.wrist"}, progress=False)


def test_build_datasets_refuses_a_hub_repo_id_and_reads_a_folder(stores):
    from drifting_policy.training.setup import build_datasets

    _, root = stores
    task = {"dataset": {"type": "lerobot", "root": "lerobot/pusht", "features": KEYPOINT_FEATURES,
                        "action_feature": "action", "val_ratio": 0.34, "progress": False},
            "shape_meta": KEYPOINT_META}
    with pytest.raises(FileNotFoundError, match="'lerobot/pusht' is not a local folder; nothing is downl"):
        build_datasets(task, {"obs_horizon": 2, "action_horizon": 8, "prediction_horizon": 16})
    task["dataset"]["root"] = str(root)
    train, val = build_datasets(task, {"obs_horizon": 2, "action_horizon": 8, "prediction_horizon": 16})
    assert train[0]["obs"]["keypoint"].shape == (2, 9, 2) and train[0]["action"].shape == (16, 2)
    assert set(train.episode_ids).isdisjoint(val.episode_ids)


def test_robomimic_hdf5_export_round_trip(tmp_path):
    import h5py

    lengths = (10, 12)
    with h5py.File(tmp_path / "demo.hdf5", "w") as file:
        data = file.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1, "env_kwargs": {}})
        for d, length in enumerate(lengths):
            demo = data.create_group(f"demo_{d}")
            demo.attrs["num_samples"] = length
            code = (100.0 * d + np.arange(length))[:, None]
            demo.create_dataset("actions", data=np.repeat(code, 7, 1))
            for key, size in (("object", 10), ("robot0_eef_pos", 3), ("robot0_eef_quat", 4),
                              ("robot0_gripper_qpos", 2)):
                demo.create_dataset(f"obs/{key}", data=np.repeat(code, size, 1).astype(np.float32))
            demo.create_dataset("obs/agentview_image", data=np.full((length, 8, 8, 3), 60 * d, np.uint8))
    root = export(tmp_path / "demo.hdf5", tmp_path / "lift_lerobot", progress=False)
    names = ["observation.state", "observation.object", "observation.images.agentview", "action"]
    data = read_lerobot(root, names, progress=False)
    np.testing.assert_array_equal(data.episode_ends, np.cumsum(lengths))
    assert data.fps == 20 and data.arrays["observation.state"].shape == (22, 9)
    np.testing.assert_array_equal(data.arrays["action"][:, 0], np.r_[np.arange(10), 100 + np.arange(12)])
    assert np.abs(data.arrays["observation.images.agentview"].astype(int)[10:] - 60).max() <= 2


def test_lerobot_opens_the_export(stores):
    """Only where LeRobot is installed (never in the project's venv: docs/lerobot.md shows the check)."""
    lerobot_dataset = pytest.importorskip("lerobot.datasets.lerobot_dataset")
    _, root = stores
    dataset = lerobot_dataset.LeRobotDataset("local/test", root=root, video_backend="pyav")
    assert len(dataset) == sum(LENGTHS) and dataset.fps == FPS
    assert tuple(dataset[0]["observation.image"].shape) == (3, 16, 16)

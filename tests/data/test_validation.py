"""Bad demonstration files, zarr and hdf5 alike: one DatasetError naming the file, key and episode."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from drifting_policy.data import PushTDataset, ReplayBuffer, RobomimicDataset
from drifting_policy.data.robomimic_hdf5 import Episode, RobomimicWriter
from drifting_policy.data.validation import DatasetError

LOW_DIM = ("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
DIMS = {"object": 10, "robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2}


def write_pusht(path, action_dtype=np.float32, nan_at=None):
    buffer = ReplayBuffer.create(path)
    rng = np.random.default_rng(0)
    for episode in range(3):
        action = rng.uniform(0, 500, (20, 2))
        if nan_at == episode:
            action[4, 1] = np.nan
        buffer.add_episode({"state": rng.uniform(0, 500, (20, 5)).astype(np.float32),
                            "keypoint": rng.uniform(0, 500, (20, 9, 2)).astype(np.float32),
                            "action": action.astype(action_dtype)})
    return path


def write_robomimic(path, action_dtype=np.float64, nan_obs_demo=None):
    rng = np.random.default_rng(0)
    writer = RobomimicWriter(path, {"env_name": "Lift", "type": 1, "env_kwargs": {}})
    for demo in range(3):
        obs = {key: rng.normal(size=(15, dim)) for key, dim in DIMS.items()}
        if demo == nan_obs_demo:
            obs["robot0_eef_pos"][7, 0] = np.nan
        actions = rng.normal(size=(15, 7)).astype(action_dtype)
        writer.add(Episode(states=rng.normal(size=(15, 4)), actions=actions, rewards=np.zeros(15),
                           dones=np.eye(15)[-1], obs=obs, next_obs=obs, model_file=""))
    writer.finish(valid_ratio=0.0)
    return path


def test_good_files_load(tmp_path):
    assert len(PushTDataset(write_pusht(tmp_path / "ok.zarr"), val_ratio=0.0)) > 0
    assert len(RobomimicDataset(write_robomimic(tmp_path / "ok.hdf5"), val_ratio=0.0)) > 0


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_integer_actions_are_refused(tmp_path, dtype):
    with pytest.raises(DatasetError, match=f"data/action is {np.dtype(dtype)}.*float32"):
        PushTDataset(write_pusht(tmp_path / "int.zarr", action_dtype=dtype))
    with pytest.raises(DatasetError, match=f"action is {np.dtype(dtype)}.*float32"):
        RobomimicDataset(write_robomimic(tmp_path / "int.hdf5", action_dtype=dtype), val_ratio=0.0)


def test_nan_names_the_file_key_and_episode(tmp_path):
    with pytest.raises(DatasetError, match=r"nan.zarr: data/action has NaN/inf at row 44 \(episode 2, st"):
        PushTDataset(write_pusht(tmp_path / "nan.zarr", nan_at=2))
    path = write_robomimic(tmp_path / "nan.hdf5", nan_obs_demo=1)
    with pytest.raises(DatasetError, match=r"nan.hdf5: obs/robot0_eef_pos has NaN/inf .*demo_1, step 7"):
        RobomimicDataset(path, val_ratio=0.0)


def test_a_damaged_chunk_or_metadata_names_the_file(tmp_path):
    path = write_pusht(tmp_path / "chunk.zarr")
    chunks = sorted(p for p in (path / "data" / "action").rglob("*") if p.is_file() and p.name != "zarr.json")
    assert chunks, "the store should have action chunks on disk"
    chunks[0].write_bytes(b"\x00garbage" * 7)
    with pytest.raises(DatasetError, match=r"chunk.zarr: cannot read data/action.*re-collect"):
        PushTDataset(path)
    path = write_pusht(tmp_path / "meta.zarr")
    (path / "zarr.json").write_text("{ not json")
    with pytest.raises(DatasetError, match=r"meta.zarr: cannot read the zarr store's metadata"):
        PushTDataset(path)
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DatasetError, match=r"bad.hdf5: cannot read the hdf5 file"):
        RobomimicDataset(bad)


def test_hdf5_errors_are_dataset_errors(tmp_path):
    path = write_robomimic(tmp_path / "x.hdf5")
    with h5py.File(path, "r+") as file:
        del file["data/demo_1/obs/object"]
    with pytest.raises(DatasetError, match="demo_1: missing observation 'obs/object'"):
        RobomimicDataset(path, val_ratio=0.0)

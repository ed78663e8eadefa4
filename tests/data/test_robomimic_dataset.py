"""RobomimicDataset on small synthetic robomimic files (no simulator needed)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from drifting_policy.data.robomimic import (
    LOW_DIM_KEYS,
    RobomimicDataset,
    RobomimicFileError,
    action_7d_to_10d,
    action_10d_to_7d,
)
from drifting_policy.data.sequence import SequenceSampler
from drifting_policy.policy.normalizer import Normalizer

LENGTHS = (20, 23, 18, 25)  # >= prediction_horizon - action_horizon + 1, or a demo has no window


def write_file(path, lengths=LENGTHS, env_name="Lift", object_dim=10, image=False, abs_actions=True):
    """Demo d, step t: obs/object[t] = 100 d + t (all dims), actions[t, 0] = 100 d + t."""
    with h5py.File(path, "w") as file:
        data = file.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": env_name, "type": 1, "env_kwargs": {}})
        data.attrs["total"] = sum(lengths)
        for d, length in enumerate(lengths):
            demo = data.create_group(f"demo_{d}")
            demo.attrs["num_samples"] = length
            code = 100.0 * d + np.arange(length)
            actions = np.zeros((length, 7))
            actions[:, 0] = code
            actions[:, 3:6] = Rotation.random(length, random_state=d).as_rotvec()
            demo.create_dataset("actions", data=actions)
            if abs_actions:
                demo.create_dataset("actions_abs", data=actions)
            obs = {
                "object": np.repeat(code[:, None], object_dim, 1),
                "robot0_eef_pos": np.ones((length, 3)),
                "robot0_eef_quat": np.ones((length, 4)),
                "robot0_gripper_qpos": np.ones((length, 2)),
            }
            if image:
                obs["agentview_image"] = np.full((length, 8, 8, 3), d, dtype=np.uint8)
            for key, value in obs.items():
                demo.create_dataset(
                    f"obs/{key}", data=value.astype(np.float32) if value.dtype != np.uint8 else value
                )
        file.create_group("mask").create_dataset("train", data=np.array([b"demo_0", b"demo_2"]))
    return path


@pytest.fixture
def hdf5(tmp_path):
    return write_file(tmp_path / "demo.hdf5")


def test_samples_have_pusht_layout_and_dp_padding(hdf5):
    ds = RobomimicDataset(hdf5, obs_horizon=2, action_horizon=8, prediction_horizon=16, val_ratio=0.0)
    sample = ds[0]
    assert set(sample) == {"obs", "action"}
    assert set(sample["obs"]) == set(LOW_DIM_KEYS)
    assert sample["obs"]["object"].shape == (2, 10) and sample["obs"]["object"].dtype == np.float32
    assert sample["action"].shape == (16, 7) and sample["action"].dtype == np.float32
    # first window of demo 0 starts one step early: step 0 repeated, then steps 1..14
    np.testing.assert_array_equal(sample["obs"]["object"][:, 0], [0, 0])
    np.testing.assert_array_equal(sample["action"][:, 0], [0, *range(15)])
    last = ds[len(ds) - 1]["action"][:, 0]  # last window of demo 3 ends action_horizon - 1 steps past its end
    np.testing.assert_array_equal(last, [*range(316, 325), *[324] * 7])
    expected = SequenceSampler(np.cumsum(LENGTHS), 16, 2, 8)
    assert len(ds) == len(expected)


def test_windows_match_sequence_sampler_rows(hdf5):
    ds = RobomimicDataset(hdf5, obs_horizon=2, action_horizon=4, prediction_horizon=8, val_ratio=0.0)
    codes = np.concatenate([100.0 * d + np.arange(n) for d, n in enumerate(LENGTHS)])
    for index in range(0, len(ds), 3):
        rows = ds.sampler.rows(index)
        np.testing.assert_array_equal(ds[index]["action"][:, 0], codes[rows])
        np.testing.assert_array_equal(ds[index]["obs"]["object"][:, 0], codes[rows[:2]])


def test_train_val_split_disjoint_and_filter_key(hdf5):
    train = RobomimicDataset(hdf5, val_ratio=0.25, seed=3)
    val = train.get_validation_dataset()
    assert set(train.demo_names).isdisjoint(val.demo_names)
    assert len(train.demo_names) + len(val.demo_names) == len(LENGTHS)
    filtered = RobomimicDataset(hdf5, val_ratio=0.0, filter_key="train")
    assert filtered.demo_names == ["demo_0", "demo_2"]
    with pytest.raises(ValueError, match="train split"):
        val.normalizer_data()


def test_shape_meta_and_normalizer_data(tmp_path):
    path = write_file(tmp_path / "img.hdf5", image=True)
    ds = RobomimicDataset(path, obs_keys=("agentview_image", "robot0_eef_pos"), val_ratio=0.0)
    assert ds.shape_meta == {
        "obs": {
            "agentview_image": {"shape": (8, 8, 3), "type": "rgb"},
            "robot0_eef_pos": {"shape": (3,), "type": "low_dim"},
        },
        "action": {"shape": (7,)},
    }
    assert ds[0]["obs"]["agentview_image"].dtype == np.uint8
    data = ds.normalizer_data()
    assert set(data) == {"robot0_eef_pos", "action"} and len(data["action"]) == sum(LENGTHS)
    normalizer = Normalizer()
    normalizer.fit(data)
    out = normalizer.normalize("action", torch.from_numpy(data["action"]))
    assert out.min() >= -1.0 - 1e-6 and out.max() <= 1.0 + 1e-6


def test_abs_action_is_10d_and_round_trips(hdf5):
    ds = RobomimicDataset(hdf5, abs_action=True, val_ratio=0.0)
    assert ds.shape_meta["action"]["shape"] == (10,)
    with h5py.File(hdf5) as file:
        raw = file["data/demo_0/actions_abs"][:].astype(np.float32)
    back = action_10d_to_7d(ds.arrays["action"][: len(raw)])
    np.testing.assert_allclose(back[:, :3], raw[:, :3], atol=1e-5)
    np.testing.assert_allclose(back[:, 6], raw[:, 6])
    relative = Rotation.from_rotvec(back[:, 3:6]) * Rotation.from_rotvec(raw[:, 3:6]).inv()
    assert relative.magnitude().max() < 1e-4
    assert np.all(np.abs(ds.arrays["action"][:, 3:9]) <= 1.0 + 1e-6)  # rotation rows are unit vectors


def test_abs_action_rotation_dims_pass_the_normalizer_untouched(hdf5):
    """Diffusion Policy's rotation-aware normalisation: position and gripper min/max to [-1, 1], the 6-D
    rotation unchanged; normalise -> unnormalise is exact and survives a state_dict round trip."""
    ds = RobomimicDataset(hdf5, abs_action=True, val_ratio=0.0)
    assert ds.normalizer_identity_dims == {"action": (3, 4, 5, 6, 7, 8)}
    assert RobomimicDataset(hdf5, val_ratio=0.0).normalizer_identity_dims == {}
    normalizer = Normalizer().fit(ds.normalizer_data(), identity_dims=ds.normalizer_identity_dims)
    actions = torch.from_numpy(ds.arrays["action"])  # [N, 10]
    normed = normalizer.normalize("action", actions)
    assert torch.equal(normed[:, 3:9], actions[:, 3:9])
    assert normed[:, 0].min() == -1.0 and normed[:, 0].max() == 1.0  # position still min/max scaled
    assert torch.equal(normalizer.unnormalize("action", normed)[:, 3:9], actions[:, 3:9])
    torch.testing.assert_close(normalizer.unnormalize("action", normed), actions, rtol=0, atol=1e-4)
    fresh = Normalizer()
    fresh.load_state_dict(normalizer.state_dict())
    assert sorted(normalizer.state_dict()) == sorted(Normalizer().fit(ds.normalizer_data()).state_dict())
    assert torch.equal(fresh.normalize("action", actions), normed)
    with pytest.raises(ValueError, match=r"identity_dims\['action'\]=\[10\]"):
        Normalizer().fit(ds.normalizer_data(), identity_dims={"action": [10]})


def test_action_conversion_batch_shapes():
    actions = np.random.default_rng(0).normal(size=(4, 16, 7)).astype(np.float32)
    ten = action_7d_to_10d(actions)
    assert ten.shape == (4, 16, 10)
    assert action_10d_to_7d(ten).shape == (4, 16, 7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"obs_keys": ("object", "robot0_joint_pos")}, "obs/robot0_joint_pos"),
        ({"obs_keys": ("agentview_image",)}, "collect.robomimic_images"),
        ({"filter_key": "20_percent"}, "mask/20_percent"),
        ({"obs_keys": ()}, "obs_keys is empty"),
    ],
)
def test_errors_name_the_problem(hdf5, kwargs, match):
    with pytest.raises(ValueError, match=match):
        RobomimicDataset(hdf5, val_ratio=0.0, **kwargs)


def test_wrong_object_dim_and_missing_abs_actions(tmp_path):
    wrong = write_file(tmp_path / "wrong.hdf5", env_name="PickPlaceCan", object_dim=10)
    with pytest.raises(RobomimicFileError, match=r"object has per-step shape \(10,\); expected \(14,\)"):
        RobomimicDataset(wrong, val_ratio=0.0)
    delta = write_file(tmp_path / "delta.hdf5", abs_actions=False)
    with pytest.raises(RobomimicFileError, match="actions_abs"):
        RobomimicDataset(delta, abs_action=True, val_ratio=0.0)


def test_inconsistent_lengths_and_shapes(tmp_path, hdf5):
    with h5py.File(hdf5, "r+") as file:
        file["data/demo_1"].attrs["num_samples"] = 99
    with pytest.raises(RobomimicFileError, match="num_samples=99"):
        RobomimicDataset(hdf5, val_ratio=0.0)
    other = write_file(tmp_path / "other.hdf5")
    with h5py.File(other, "r+") as file:
        del file["data/demo_2/obs/robot0_eef_pos"]
        file["data/demo_2/obs/robot0_eef_pos"] = np.ones((LENGTHS[2], 4), np.float32)
    with pytest.raises(RobomimicFileError, match="robot0_eef_pos has per-step shape"):
        RobomimicDataset(other, val_ratio=0.0)


def test_not_a_robomimic_file(tmp_path):
    path = tmp_path / "empty.hdf5"
    with h5py.File(path, "w") as file:
        file.create_group("data")
    with pytest.raises(RobomimicFileError, match="env_args"):
        RobomimicDataset(path)
    with pytest.raises(FileNotFoundError, match="drifting-collect"):
        RobomimicDataset(tmp_path / "missing.hdf5")

"""robomimic hdf5 files: layout, reading back (ours and robomimic's SequenceDataset), replay, errors."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

pytest.importorskip("robosuite")

from drifting_policy.collect.robomimic import RobomimicCollectConfig, collect, collect_robomimic  # noqa: E402
from drifting_policy.collect.robomimic_images import render_images  # noqa: E402
from drifting_policy.data.robomimic import (  # noqa: E402
    RobomimicDataset,
    action_7d_to_10d,
    action_10d_to_7d,
)
from drifting_policy.data.robomimic_hdf5 import RobomimicFileError, read_episode, validate_file  # noqa: E402
from envs.robomimic.env import RenderingUnavailable, RobomimicEnv, ensure_gl_backend  # noqa: E402
from envs.robomimic.experts import EXPERT_VERSION  # noqa: E402

KEYS = ("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")


@pytest.fixture(scope="module")
def lift_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("rm") / "lift.hdf5"
    summary = collect(
        {
            "task": "lift",
            "episodes": 2,
            "seed": 0,
            "out": str(out),
            "noise_std": 0.1,
            "render_images": False,
            "valid_ratio": 0.5,
            "progress": False,
            "obs_types": None,
        }
    )
    assert summary.kept == 2 and summary.out == out
    return out


def test_layout_and_attrs(lift_file):
    with h5py.File(lift_file) as file:
        data = file["data"]
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["env_name"] == "Lift" and env_args["type"] == 1
        arm = env_args["env_kwargs"]["controller_configs"]["body_parts"]["right"]
        assert arm["type"] == "OSC_POSE" and arm["input_type"] == "delta"
        assert data.attrs["expert_version"] == EXPERT_VERSION and data.attrs["complete"]
        assert (data.attrs["attempted"], data.attrs["succeeded"], data.attrs["kept"]) == (2, 2, 2)
        lengths = [data[name].attrs["num_samples"] for name in ("demo_0", "demo_1")]
        assert data.attrs["total"] == sum(lengths)
        demo = data["demo_0"]
        length = lengths[0]
        assert demo["states"].shape[0] == length and demo["states"].dtype == np.float64
        assert demo["actions"].shape == (length, 7) and demo["actions_abs"].shape == (length, 7)
        assert demo["dones"][-1] == 1 and demo["dones"][:-1].sum() == 0
        assert demo["rewards"][-1] == 1.0  # episodes end at the first success
        assert demo.attrs["seed"] == 0 and "<mujoco" in demo.attrs["model_file"]
        assert set(demo["obs"]) == set(KEYS) == set(demo["next_obs"])
        np.testing.assert_array_equal(demo["obs/object"][1:], demo["next_obs/object"][:-1])
        masks = {key: sorted(n.decode() for n in file["mask"][key]) for key in ("train", "valid")}
        assert sorted(masks["train"] + masks["valid"]) == ["demo_0", "demo_1"] and len(masks["valid"]) == 1


def test_project_loader_and_robomimic_sequence_dataset_agree(lift_file):
    pytest.importorskip("six")
    import robomimic.utils.obs_utils as obs_utils
    from robomimic.utils.dataset import SequenceDataset

    obs_utils.initialize_obs_utils_with_obs_specs({"obs": {"low_dim": list(KEYS), "rgb": []}})
    theirs = SequenceDataset(
        hdf5_path=str(lift_file),
        obs_keys=KEYS,
        dataset_keys=("actions",),
        frame_stack=2,
        seq_length=16,
        pad_frame_stack=True,
        pad_seq_length=True,
        get_pad_mask=False,
        goal_mode=None,
        hdf5_cache_mode="low_dim",
        hdf5_use_swmr=True,
        hdf5_normalize_obs=False,
        filter_by_attribute=None,
        load_next_obs=False,
    )
    ours = RobomimicDataset(
        lift_file, obs_keys=KEYS, obs_horizon=2, prediction_horizon=16, action_horizon=8, val_ratio=0.0
    )
    with h5py.File(lift_file) as file:
        actions = file["data/demo_0/actions"][:]
        obj = file["data/demo_0/obs/object"][:]
    # robomimic item i frame-stacks [i - 1, i] (step 0 repeated at i = 0) for obs and actions alike, then
    # continues the actions; that is Diffusion Policy's window i, as our SequenceSampler builds it
    for index in range(6):
        item, sample = theirs[index], ours[index]
        np.testing.assert_allclose(sample["action"], item["actions"][:16], atol=1e-6)
        for key in KEYS:
            np.testing.assert_allclose(sample["obs"][key], item["obs"][key][:2], atol=1e-6, err_msg=key)
    np.testing.assert_allclose(ours[0]["action"][:3], actions[[0, 0, 1]], atol=1e-6)
    np.testing.assert_allclose(ours[0]["obs"]["object"], obj[[0, 0]], atol=1e-6)
    for key in ("actions", *[f"obs/{k}" for k in KEYS]):
        mine = ours.arrays["action" if key == "actions" else key[4:]]
        full = np.concatenate([theirs.get_dataset_for_ep(name, key) for name in ("demo_0", "demo_1")])
        np.testing.assert_allclose(mine, full, atol=1e-6, err_msg=key)


def test_reset_to_state_replay_reproduces_recorded_obs(lift_file):
    with h5py.File(lift_file) as file:
        episode = read_episode(file, "demo_1")
    env = RobomimicEnv(task="lift", terminate_on_success=False)
    env.reset(seed=123)  # a different scene first
    obs, _ = env.reset(options={"reset_to_state": episode.states[0], "model_file": episode.model_file})
    for key in KEYS:
        np.testing.assert_allclose(obs[key], episode.obs[key][0], atol=1e-6, err_msg=key)
    for t, action in enumerate(episode.actions):
        obs, _, _, _, info = env.step(action)
        for key in KEYS:
            np.testing.assert_allclose(
                obs[key], episode.next_obs[key][t], atol=1e-5, err_msg=f"{key} step {t}"
            )
    assert info["is_success"]
    env.close()


def test_absolute_actions_through_the_10d_conversion_replay_the_demo(lift_file):
    """What an abs-action policy's output goes through (actions_abs -> 10-D -> runner's action_10d_to_7d ->
    absolute env) reproduces the delta-controlled demo: same observations, same success."""
    with h5py.File(lift_file) as file:
        episode = read_episode(file, "demo_0")
    actions = action_10d_to_7d(action_7d_to_10d(episode.extras["actions_abs"]))  # [T, 7]
    env = RobomimicEnv(task="lift", action_mode="absolute", terminate_on_success=False)
    env.reset(options={"reset_to_state": episode.states[0], "model_file": episode.model_file})
    for t, action in enumerate(actions):
        obs, reward, _, _, info = env.step(action)
        for key in KEYS:
            np.testing.assert_allclose(obs[key], episode.next_obs[key][t], atol=1e-5, err_msg=f"{key} {t}")
        assert reward == float(info["is_success"]), f"step {t}: sparse reward {reward} disagrees with success"
    assert info["is_success"]
    env.close()


def corrupt(path, tmp_path, edit):
    bad = tmp_path / "bad.hdf5"
    shutil.copy(path, bad)
    with h5py.File(bad, "r+") as file:
        edit(file)
    return bad


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda f: f["data"].attrs.__delitem__("env_args"), "no 'env_args' attribute"),
        (lambda f: f["data"].attrs.__setitem__("env_args", "{not json"), "not valid JSON"),
        (lambda f: f["data"].attrs.__setitem__("total", 3), r"total'\]=3"),
        (lambda f: f["data/demo_1"].__delitem__("actions"), "demo_1: missing dataset 'actions'"),
        (lambda f: f["data/demo_0"].attrs.__setitem__("num_samples", 1), "demo_0: num_samples=1"),
        (lambda f: f["data/demo_0/obs"].__delitem__("object"), "missing observation 'obs/object'"),
        (
            lambda f: f["mask"].__delitem__("train") or f["mask"].create_dataset("train", data=[b"demo_9"]),
            r"mask/train names demos that do not exist: \['demo_9'\]",
        ),
    ],
)
def test_each_malformed_file_error_names_the_problem(lift_file, tmp_path, edit, match):
    bad = corrupt(lift_file, tmp_path, edit)
    with h5py.File(bad) as file, pytest.raises(RobomimicFileError, match=match):
        validate_file(file, bad, obs_keys=KEYS)


def test_collect_refuses_overwrite_and_leaves_no_partial(lift_file, tmp_path):
    with pytest.raises(FileExistsError, match="overwrite=true"):
        collect({"task": "lift", "episodes": 1, "out": str(lift_file), "progress": False})
    assert not lift_file.with_name(lift_file.name + ".partial").exists()
    with pytest.raises(ValueError, match="evaluation seeds"):
        RobomimicCollectConfig(task="lift", seed=99_999, episodes=2)
    with pytest.raises(ValueError, match="hdf5"):
        RobomimicCollectConfig(task="lift", out="data/lift.zarr")
    with pytest.raises(ValueError, match="unknown settings"):
        collect({"task": "lift", "episode": 3})
    assert RobomimicCollectConfig(task="can").out == "data/robomimic/can_scripted.hdf5"


def test_collect_removes_partial_on_failure(tmp_path, monkeypatch):
    import drifting_policy.collect.robomimic as collect_module

    def boom(*args, **kwargs):
        raise RuntimeError("expert crashed")

    monkeypatch.setattr(collect_module, "record_episode", boom)
    out = tmp_path / "lift.hdf5"
    with pytest.raises(RuntimeError, match="expert crashed"):
        collect_robomimic(RobomimicCollectConfig(task="lift", episodes=1, out=str(out), progress=False))
    assert not out.exists() and not out.with_name("lift.hdf5.partial").exists()


@pytest.mark.slow  # ~10 s of EGL context setup plus ~0.3 s per rendered step on a shared CPU
def test_render_images_adds_camera_obs(lift_file, tmp_path):
    try:
        ensure_gl_backend()
    except RenderingUnavailable as error:
        pytest.skip(f"image observations unavailable here: {error}")
    path = tmp_path / "img.hdf5"
    with h5py.File(lift_file) as src, h5py.File(path, "w") as dst:
        src.copy("data", dst)
        dst["data"].attrs["total"] = src["data/demo_0"].attrs["num_samples"]
        del dst["data/demo_1"]
    assert render_images(path, progress=False) == 1
    with h5py.File(path) as file:
        demo = file["data/demo_0"]
        length = demo.attrs["num_samples"]
        for key in ("agentview_image", "robot0_eye_in_hand_image"):
            assert demo[f"obs/{key}"].shape == (length, 84, 84, 3) and demo[f"obs/{key}"].dtype == np.uint8
            np.testing.assert_array_equal(demo[f"obs/{key}"][1:], demo[f"next_obs/{key}"][:-1])

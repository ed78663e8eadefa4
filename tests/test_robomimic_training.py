"""robomimic task configs through the shared trainer and runner: config checks, a 2-step train +
1-episode evaluation smoke on lift_state (real robosuite env, tiny policy, tiny hdf5 written here),
missing-data errors."""

import json

import h5py
import numpy as np
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from drifting_policy.checkpoint import load_checkpoint
from drifting_policy.runner import RunnerConfig
from drifting_policy.train import build_datasets, check_shape_meta, run_training

DP_LOW_DIM_KEYS = ["object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
CAMERA_KEYS = ["agentview_image", "robot0_eye_in_hand_image"]
TASKS = {"lift": (10, 400), "can": (14, 400), "tool_hang": (44, 700)}  # object dim, horizon
TINY = ["train.max_steps=2", "train.batch_size=4", "train.log_every=1", "train.warmup_steps=1",
        "train.eval_every=null", "train.progress=false", "policy.mlp_width=32", "policy.mlp_depth=1",
        "task.dataset.val_ratio=0.25"]


def compose_config(overrides: list[str]) -> dict:
    with initialize_config_module("configs", version_base=None):
        return OmegaConf.to_container(compose("train", overrides=overrides), resolve=True)


def write_hdf5(path, env_name="Lift", object_dim=10, n_demos=4, length=20, image_size=0):
    """A minimal robomimic file (what RobomimicDataset reads) with random observations and actions."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as file:
        data = file.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": env_name, "type": 1, "env_kwargs": {}})
        data.attrs["expert"] = "synthetic"
        data.attrs["total"] = n_demos * length
        for i in range(n_demos):
            demo = data.create_group(f"demo_{i}")
            demo.attrs["num_samples"] = length
            demo["actions"] = rng.uniform(-1, 1, (length, 7)).astype(np.float32)
            obs = demo.create_group("obs")
            for key, dim in zip(DP_LOW_DIM_KEYS, (object_dim, 3, 4, 2), strict=True):
                obs[key] = rng.normal(size=(length, dim)).astype(np.float32)
            for key in CAMERA_KEYS if image_size else []:
                obs[key] = rng.integers(0, 256, (length, image_size, image_size, 3), dtype=np.uint8)
    return path


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("obs", ["state", "image"])
def test_task_configs_follow_diffusion_policy_protocol(task, obs):
    from drifting_policy.policy import POLICIES
    from drifting_policy.trainer import TrainConfig

    object_dim, horizon = TASKS[task]
    for policy in ("drifting", "diffusion"):
        cfg = compose_config([f"task={task}_{obs}", f"policy={policy}"])
        options = {key: value for key, value in cfg["policy"].items() if key != "name"}
        config = POLICIES[policy].config_class(**options)
        TrainConfig(**cfg["train"])
        runner = RunnerConfig(**cfg["task"]["runner"])
        assert runner.seeds == list(range(100000, 100050)) and runner.max_steps == horizon
        assert runner.success_key == "is_success" and runner.coverage_key is None
        assert runner.env_kwargs["obs_type"] == ("low_dim" if obs == "state" else "image")
        dataset, meta = cfg["task"]["dataset"], cfg["task"]["shape_meta"]
        assert dataset["type"] == "robomimic" and dataset["abs_action"] is False
        assert sorted(meta["obs"]) == sorted(dataset["obs_keys"]) and meta["action"]["shape"] == [7]
        if obs == "state":
            assert dataset["obs_keys"] == DP_LOW_DIM_KEYS and config.crop_shape is None
            assert meta["obs"]["object"]["shape"] == [object_dim]
        else:
            assert dataset["obs_keys"] == CAMERA_KEYS + DP_LOW_DIM_KEYS[1:] and config.crop_shape == (76, 76)
            assert all(meta["obs"][key] == {"shape": [84, 84, 3], "type": "rgb"} for key in CAMERA_KEYS)


@pytest.mark.parametrize("obs", ["state", "image"])
def test_tool_hang_fails_naming_the_missing_file_and_the_collect_command(obs):
    cfg = compose_config([f"task=tool_hang_{obs}", "policy=drifting"])
    with pytest.raises(FileNotFoundError, match=r"tool_hang_(scripted|image)\.hdf5 does not exist.*"
                                                r"drifting-collect task=tool_hang.*0/5"):
        build_datasets(cfg["task"], cfg["policy"])


def test_shape_meta_mismatch_is_refused(tmp_path):
    """can_state's config on a Lift file: the object vector is 10-D, not 14-D."""
    path = write_hdf5(tmp_path / "lift.hdf5")
    cfg = compose_config(["task=can_state", f"task.dataset.hdf5_path={path}", "task.dataset.val_ratio=0"])
    train, _ = build_datasets(cfg["task"], cfg["policy"])
    with pytest.raises(ValueError, match="task.shape_meta="):
        check_shape_meta(cfg["task"]["shape_meta"], train.shape_meta)


def test_lift_state_trains_two_steps_and_evaluates_one_episode(tmp_path):
    path = write_hdf5(tmp_path / "lift.hdf5")
    run_dir = tmp_path / "run"
    cfg = compose_config(["task=lift_state", "policy=drifting", f"task.dataset.hdf5_path={path}",
                          f"run_dir={run_dir}", *TINY, "task.runner.n_seeds=1", "task.runner.n_envs=1",
                          "task.runner.max_steps=16"])
    metrics = run_training(cfg)
    assert metrics["eval/n_episodes"] == 1.0 and metrics["eval/mean_episode_steps"] == 16.0
    assert "eval/mean_max_coverage" not in metrics and np.isfinite(metrics["train/loss"])
    ckpt = load_checkpoint(run_dir / "checkpoints" / "latest")
    assert ckpt.train_state["step"] == 2 and ckpt.config["task"]["name"] == "lift_state"
    assert ckpt.shape_meta["obs"]["object"]["shape"] == [10] and ckpt.shape_meta["action"]["shape"] == [7]
    info = ckpt.config["dataset_info"]
    assert info["store"] == {"expert": "synthetic", "total": 80} and info["train_episodes"] == 3
    summary = json.loads((run_dir / "eval" / "step_0000002.json").read_text())
    assert summary["eval"]["seeds"] == [100000]


def test_lift_image_trains_one_step_on_cameras(tmp_path):
    """The image config's data path and encoder (two ResNet-18s, 76-px crops); no rendering needed."""
    path = write_hdf5(tmp_path / "lift_image.hdf5", n_demos=2, length=10, image_size=84)
    cfg = compose_config(["task=lift_image", "policy=drifting", f"task.dataset.hdf5_path={path}",
                          f"run_dir={tmp_path / 'run'}", *TINY, "train.max_steps=1", "train.batch_size=2",
                          "policy.samples_per_obs=2", "task.dataset.val_ratio=0", "train.eval_at_end=false"])
    metrics = run_training(cfg)
    assert np.isfinite(metrics["train/loss"]) and "eval/success_rate" not in metrics

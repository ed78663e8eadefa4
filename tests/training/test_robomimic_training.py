"""robomimic task configs through the shared trainer and runner: config checks, a 2-step train +
1-episode evaluation smoke on lift_state and lift_state_abs (real robosuite env, tiny policy, tiny hdf5
written here), the runner's action check and videos, missing-data errors."""

import json
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from PIL import Image, ImageSequence

from drifting_policy.evaluation.runner import EnvRunner, RunnerConfig
from drifting_policy.training.checkpoint import load_checkpoint
from drifting_policy.training.setup import (
    build_datasets,
    check_shape_meta,
    run_training,
)

DP_LOW_DIM_KEYS = ["object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
CAMERA_KEYS = ["agentview_image", "robot0_eye_in_hand_image"]
# object dim, horizon
TASKS = {"lift": (10, 400), "can": (14, 400), "square": (14, 400), "tool_hang": (44, 700)}
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
            # absolute targets near the gripper's start pose (world position, site-frame axis-angle)
            start = np.array([-0.1, 0.0, 1.0, np.pi, 0.0, 0.0, -1.0])
            demo["actions_abs"] = (start + rng.normal(0, 0.02, (length, 7))).astype(np.float32)
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
    from drifting_policy.training.trainer import TrainConfig

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


@pytest.mark.parametrize("task", ["lift", "can"])
def test_abs_configs_change_only_the_action_representation(task):
    delta, absolute = (compose_config([f"task={task}_{name}"])["task"] for name in ("state", "state_abs"))
    assert absolute["dataset"] == {**delta["dataset"], "abs_action": True}
    assert absolute["shape_meta"] == {**delta["shape_meta"], "action": {"shape": [10]}}
    runner = RunnerConfig(**absolute["runner"])
    assert runner.env_kwargs == {"obs_type": "low_dim", "action_mode": "absolute"}
    assert runner.action_transform == "drifting_policy.data.robomimic:action_10d_to_7d"
    assert {**absolute["runner"], "env_kwargs": None, "action_transform": None} == {
        **delta["runner"], "env_kwargs": None}


@pytest.mark.parametrize("obs", ["state", "image"])
def test_tool_hang_fails_naming_the_missing_file_and_the_collect_command(obs, tmp_path):
    cfg = compose_config([f"task=tool_hang_{obs}", "policy=drifting",
                          f"task.dataset.hdf5_path={tmp_path}/tool_hang_{obs}.hdf5"])
    with pytest.raises(FileNotFoundError, match=r"tool_hang_(state|image)\.hdf5 does not exist.*"
                                                r"drifting-collect task=tool_hang episodes=200"):
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


def test_lift_state_abs_trains_on_10d_actions_and_evaluates_in_an_absolute_env(tmp_path):
    """task=lift_state_abs: 10-D actions (rotation dims unnormalised in the checkpoint's normaliser), the
    runner maps them to the absolute env's 7-D actions."""
    path = write_hdf5(tmp_path / "lift.hdf5")
    run_dir = tmp_path / "run"
    cfg = compose_config(["task=lift_state_abs", "policy=diffusion", f"task.dataset.hdf5_path={path}",
                          f"run_dir={run_dir}", *TINY, "policy.num_inference_steps=2",
                          "task.runner.n_seeds=1", "task.runner.n_envs=1", "task.runner.max_steps=8"])
    metrics = run_training(cfg)
    assert metrics["eval/n_episodes"] == 1.0 and metrics["eval/mean_episode_steps"] == 8.0
    ckpt = load_checkpoint(run_dir / "checkpoints" / "latest")
    assert ckpt.shape_meta["action"]["shape"] == [10]
    assert ckpt.config["task"]["runner"]["env_kwargs"]["action_mode"] == "absolute"
    scale = ckpt.policy_state["normalizer.params.action.scale"]
    offset = ckpt.policy_state["normalizer.params.action.offset"]
    assert torch.equal(scale[3:9], torch.ones(6)) and torch.equal(offset[3:9], torch.zeros(6))
    assert not torch.equal(scale[:3], torch.ones(3))  # positions are still min/max normalised


class ConstantPolicy(torch.nn.Module):
    """predict_action -> a fixed chunk [B, 16, action_dim]; enough for the runner's protocol."""

    def __init__(self, action: list[float]):
        super().__init__()
        self.register_buffer("action", torch.tensor(action))
        self.config = SimpleNamespace(obs_horizon=2, action_horizon=8)

    def reset(self) -> None:
        pass

    def predict_action(self, obs, generator=None):
        batch = next(iter(obs.values())).shape[0]
        return self.action.expand(batch, 16, -1)


def lift_runner(**overrides) -> EnvRunner:
    cfg = compose_config(["task=lift_state"])
    return EnvRunner(RunnerConfig(**{**cfg["task"]["runner"], "n_seeds": 1, "n_envs": 1, "max_steps": 16,
                                     **overrides}))


def test_runner_refuses_actions_the_env_does_not_take():
    with pytest.raises(ValueError, match=r"executed actions are \(8, 10\).*takes \(8, 7\).*action_transform"):
        lift_runner().run(ConstantPolicy([0.0] * 10))


def test_runner_films_agentview_or_skips_without_gl(tmp_path):
    from envs.robomimic.env import RenderingUnavailable, ensure_gl_backend

    try:
        ensure_gl_backend()
    except RenderingUnavailable as error:
        pytest.skip(f"no headless GL: {error}")
    runner = lift_runner(n_videos=1, env_kwargs={"obs_type": "low_dim", "render_size": 64})
    result = runner.run_episodes(ConstantPolicy([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]), video_dir=tmp_path)
    assert result.videos == [str(tmp_path / "seed_100000.gif")] and result.episode_steps == [16]
    with Image.open(result.videos[0]) as gif:
        frames = [(frame.size, frame.info["duration"]) for frame in ImageSequence.Iterator(gif)]
    # Pillow merges identical consecutive frames into one of summed duration (the arm stops at its limit),
    # so the frame count is the total duration over one frame's: the reset frame + one per step
    assert sum(duration for _, duration in frames) == 17 * 1000 / runner.config.video_fps
    assert frames[0][0] == (64, 64) and len(frames) > 5


def test_lift_image_trains_one_step_on_cameras(tmp_path):
    """The image config's data path and encoder (two ResNet-18s, 76-px crops); no rendering needed."""
    path = write_hdf5(tmp_path / "lift_image.hdf5", n_demos=2, length=10, image_size=84)
    cfg = compose_config(["task=lift_image", "policy=drifting", f"task.dataset.hdf5_path={path}",
                          f"run_dir={tmp_path / 'run'}", *TINY, "train.max_steps=1", "train.batch_size=2",
                          "policy.samples_per_obs=2", "task.dataset.val_ratio=0", "train.eval_at_end=false"])
    metrics = run_training(cfg)
    assert np.isfinite(metrics["train/loss"]) and "eval/success_rate" not in metrics

"""drifting-collect task=kitchen: the real expert, episode counts, replay, task orders, CLI dispatch."""

from __future__ import annotations

import numpy as np
import pytest

from drifting_policy.collect import cli
from drifting_policy.collect.kitchen import KitchenCollectConfig, collect_kitchen, order_meta
from drifting_policy.data import ReplayBuffer
from envs.kitchen.env import TASKS, FrankaKitchenEnv
from envs.kitchen.expert import KitchenExpert


class StillExpert:
    """Commands zero joint velocity: completes nothing."""

    order = ("microwave", "kettle", "light switch", "slide cabinet")

    def reset(self) -> None:
        pass

    def act(self, env) -> np.ndarray:
        return np.zeros(9, dtype=np.float32)


def test_real_expert_episodes_replay_and_counts(tmp_path):
    out = tmp_path / "kitchen.zarr"
    summary = collect_kitchen(KitchenCollectConfig(out=str(out), episodes=2, seed=0, progress=False))
    buffer = ReplayBuffer.open(out)
    assert summary.attempted == 2 and summary.kept == buffer.n_episodes == summary.succeeded == 2
    assert not (tmp_path / "kitchen.zarr.partial").exists()
    steps = buffer.n_steps
    assert {k: buffer[k].shape for k in buffer.keys()} == {
        "action": (steps, 9), "robot_qpos": (steps, 9), "object_qpos": (steps, 21)}
    attrs = buffer.attrs
    assert attrs["complete"] is True and attrs["attempted"] == 2 and attrs["succeeded"] == 2
    assert attrs["expert_version"] == "kitchen-expert-1" and len(attrs["source_sha256"]) == 16
    assert attrs["task_names"] == list(TASKS) and buffer.episode_meta("success").all()
    for episode in range(2):  # the env saw the tasks completed in the order the expert planned
        planned = [int(buffer.episode_meta(f"planned_{k}")[episode]) for k in range(4)]
        achieved = [int(buffer.episode_meta(f"achieved_{k}")[episode]) for k in range(4)]
        seed = int(buffer.episode_meta("seed")[episode])
        assert planned == achieved
        expert = KitchenExpert(np.random.default_rng(seed))
        expert.reset()  # the collector resets the expert at the start of the episode: a second draw
        assert [TASKS[i] for i in planned] == list(expert.order)
    # row t holds the observation before action t; replaying the actions reproduces the observations
    episode, seed = buffer.get_episode(1), int(buffer.episode_meta("seed")[1])
    env = FrankaKitchenEnv()
    obs, _ = env.reset(seed=seed)
    for t, action in enumerate(episode["action"]):
        for key, value in obs.items():
            np.testing.assert_array_equal(episode[key][t], value)
        obs, _, terminated, _, info = env.step(action)
    assert terminated and info["p4"] == 1.0


def test_only_successes_are_kept_unless_asked(tmp_path):
    out = tmp_path / "d.zarr"
    config = dict(out=str(out), episodes=2, seed=4, max_steps=3, progress=False)

    def still(rng, noise_std):
        return StillExpert()

    with pytest.raises(RuntimeError, match="no episode kept"):
        collect_kitchen(KitchenCollectConfig(**config), expert_factory=still)
    assert not out.exists()
    summary = collect_kitchen(KitchenCollectConfig(**config, keep_failed=True), expert_factory=still)
    buffer = ReplayBuffer.open(out)
    assert (summary.succeeded, summary.kept) == (0, 2) and buffer.attrs["succeeded"] == 0
    np.testing.assert_array_equal(buffer.episode_ends, [3, 6])
    np.testing.assert_array_equal(buffer.episode_meta("seed"), [4, 5])
    np.testing.assert_array_equal(buffer.episode_meta("achieved_0"), [-1, -1])
    np.testing.assert_array_equal(buffer.episode_meta("planned_1"), [TASKS.index("kettle")] * 2)


def test_config_errors_and_order_meta():
    assert KitchenCollectConfig().out == "data/kitchen/kitchen_scripted.zarr"
    assert order_meta("planned", ["kettle"]) == {"planned_0": 1, "planned_1": -1, "planned_2": -1,
                                                 "planned_3": -1}
    with pytest.raises(ValueError, match=r"out=<path>\.zarr"):
        KitchenCollectConfig(out="demos.hdf5")
    with pytest.raises(ValueError, match="evaluation seeds"):
        KitchenCollectConfig(seed=99_999, episodes=2)
    with pytest.raises(ValueError, match="unknown settings"):
        cli.run_collect({"task": "kitchen", "out": "x.zarr", "camera": "agentview"})
    with pytest.raises(ValueError, match="format=lerobot"):
        cli.run_collect({"task": "kitchen", "format": "lerobot"})


def test_collected_store_trains_and_evaluates_with_the_task_config(tmp_path):
    """task=kitchen_state: its shape_meta matches what the collector wrote, drifting-train runs on it and
    drifting-eval reports p1..p4 from the env's info (2 steps of a tiny MLP: only the plumbing is tested)."""
    from training_fakes import compose_config

    from drifting_policy.evaluation.eval import run_eval
    from drifting_policy.training.setup import run_training

    store, run_dir = tmp_path / "kitchen.zarr", tmp_path / "run"
    collect_kitchen(KitchenCollectConfig(out=str(store), episodes=2, seed=0, progress=False))
    overrides = ["task=kitchen_state", "policy=drifting", f"task.dataset.zarr_path={store}",
                 f"run_dir={run_dir}", "task.dataset.val_ratio=0.5", "train.max_steps=2",
                 "train.batch_size=8", "train.eval_every=null", "train.progress=false", "policy.mlp_width=32",
                 "policy.mlp_depth=1", "task.runner.n_seeds=2", "task.runner.n_envs=2",
                 "task.runner.max_steps=16"]
    metrics = run_training(compose_config("train", overrides))
    assert {"eval/p1", "eval/p4", "eval/success_rate", "eval/mean_score"} <= set(metrics)
    summary = run_eval(compose_config("eval", [f"checkpoint={run_dir}/checkpoints/latest", "n_seeds=2",
                                               "n_envs=2", "n_videos=0", "max_steps=8"]))
    assert summary["eval/n_episodes"] == 2.0 and 0.0 <= summary["eval/p4"] <= summary["eval/p1"] <= 1.0

"""drifting-collect task=blockpush: the real expert, episode counts, replay, modes, CLI dispatch."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from drifting_policy.collect import cli
from drifting_policy.collect.blockpush import BlockPushCollectConfig, collect_blockpush
from drifting_policy.data import ReplayBuffer
from envs.blockpush.env import BlockPushEnv


class StayExpert:
    """Commands the pusher's current position: never succeeds."""

    order, assignment = (0, 1), (0, 1)

    def reset(self) -> None:
        pass

    def act(self, env) -> np.ndarray:
        return env.unwrapped.world.pusher_xy.astype(np.float32)


def test_real_expert_episodes_replay_and_counts(tmp_path):
    out = tmp_path / "blockpush.zarr"
    summary = collect_blockpush(BlockPushCollectConfig(out=str(out), episodes=3, seed=0, progress=False))
    buffer = ReplayBuffer.open(out)
    assert summary.attempted == 3 and summary.kept == buffer.n_episodes == summary.succeeded
    assert buffer.n_episodes >= 2 and not (tmp_path / "blockpush.zarr.partial").exists()
    steps = buffer.n_steps
    assert {k: buffer[k].shape for k in buffer.keys()} == {
        "action": (steps, 2), "block_pose": (steps, 2, 3), "effector_pos": (steps, 2),
        "effector_target": (steps, 2), "target_pose": (steps, 2, 3)}
    attrs = buffer.attrs
    assert attrs["complete"] is True and attrs["attempted"] == 3 and attrs["succeeded"] == buffer.n_episodes
    assert attrs["expert_version"] == "blockpush-expert-1" and len(attrs["source_sha256"]) == 16
    assert buffer.episode_meta("success").all()
    # the env saw the cube the expert chose to push first enter a zone first
    np.testing.assert_array_equal(buffer.episode_meta("first_in"), buffer.episode_meta("first_block"))
    # row t holds the observation before action t; replaying the actions reproduces the observations
    episode, seed = buffer.get_episode(0), int(buffer.episode_meta("seed")[0])
    env = BlockPushEnv(render_mode=None)
    obs, _ = env.reset(seed=seed)
    for t, action in enumerate(episode["action"]):
        for key, value in obs.items():
            np.testing.assert_array_equal(episode[key][t], value)
        obs, _, terminated, _, info = env.step(action)
    assert terminated and info["p2"] == 1.0


def test_only_successes_are_kept_unless_asked(tmp_path):
    out = tmp_path / "d.zarr"
    config = dict(out=str(out), episodes=2, seed=4, max_steps=3, progress=False)

    def stay(rng, noise_std):
        return StayExpert()

    with pytest.raises(RuntimeError, match="no episode kept"):
        collect_blockpush(BlockPushCollectConfig(**config), expert_factory=stay)
    assert not out.exists()
    summary = collect_blockpush(BlockPushCollectConfig(**config, keep_failed=True), expert_factory=stay)
    buffer = ReplayBuffer.open(out)
    assert (summary.succeeded, summary.kept) == (0, 2) and buffer.attrs["succeeded"] == 0
    np.testing.assert_array_equal(buffer.episode_ends, [3, 6])
    np.testing.assert_array_equal(buffer.episode_meta("seed"), [4, 5])
    np.testing.assert_array_equal(buffer.episode_meta("first_in"), [-1, -1])


def test_config_errors():
    assert BlockPushCollectConfig().out == "data/blockpush/blockpush_scripted.zarr"
    with pytest.raises(ValueError, match=r"out=<path>\.zarr"):
        BlockPushCollectConfig(out="demos.hdf5")
    with pytest.raises(ValueError, match="evaluation seeds"):
        BlockPushCollectConfig(seed=99_999, episodes=2)
    with pytest.raises(ValueError, match="unknown settings"):
        cli.run_collect({"task": "blockpush", "out": "x.zarr", "camera": "agentview"})
    with pytest.raises(ValueError, match="format=lerobot"):
        cli.run_collect({"task": "blockpush", "format": "lerobot"})


def test_console_entry_point(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["drifting-collect", "task=blockpush", "episodes=1", "seed=2",
                                      "progress=false"])
    cli.main()
    buffer = ReplayBuffer.open(tmp_path / "data" / "blockpush" / "blockpush_scripted.zarr")
    assert buffer.n_episodes == 1 and buffer.attrs["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no hydra outputs/ left behind


def test_collected_store_trains_and_evaluates_with_the_task_config(tmp_path):
    """task=blockpush_state: its shape_meta matches what the collector wrote, drifting-train runs on it and
    drifting-eval reports p1 / p2 from the env's info (2 steps of a tiny MLP: only the plumbing is tested)."""
    from training_fakes import compose_config

    from drifting_policy.evaluation.eval import run_eval
    from drifting_policy.training.setup import run_training

    store, run_dir = tmp_path / "bp.zarr", tmp_path / "run"
    collect_blockpush(BlockPushCollectConfig(out=str(store), episodes=2, seed=0, progress=False))
    overrides = ["task=blockpush_state", "policy=drifting", f"task.dataset.zarr_path={store}",
                 f"run_dir={run_dir}", "task.dataset.val_ratio=0.5", "train.max_steps=2",
                 "train.batch_size=8", "train.eval_every=null", "train.progress=false", "policy.mlp_width=32",
                 "policy.mlp_depth=1",
                 "task.runner.n_seeds=2", "task.runner.n_envs=2", "task.runner.max_steps=16",
                 "task.runner.n_videos=1", "task.runner.env_kwargs.render_size=32"]
    metrics = run_training(compose_config("train", overrides))
    assert {"eval/p1", "eval/p2", "eval/success_rate", "eval/mean_score"} <= set(metrics)
    assert len(list((run_dir / "videos").rglob("*.gif"))) == 1
    summary = run_eval(compose_config("eval", [f"checkpoint={run_dir}/checkpoints/latest", "n_seeds=2",
                                               "n_envs=2", "n_videos=0", "max_steps=8"]))
    assert summary["eval/n_episodes"] == 2.0 and 0.0 <= summary["eval/p2"] <= summary["eval/p1"] <= 1.0

"""drifting-collect: Push-T collection with the real expert, .partial safety, seeds, CLI dispatch."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from drifting_policy.collect import cli
from drifting_policy.collect.pusht import WRITE_EVERY, PushTCollectConfig, collect_pusht
from drifting_policy.data import ReplayBuffer
from envs.pusht.env import PushTEnv


class StayExpert:
    """Commands the agent's current position: never succeeds; optionally raises at a given call."""

    def __init__(self, fail_at: int | None = None):
        self.calls, self.fail_at = 0, fail_at

    def reset(self) -> None:
        pass

    def act(self, env) -> np.ndarray:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise KeyboardInterrupt("simulated Ctrl-C")
        return np.asarray(env.get_state()[:2], dtype=np.float32)


def test_real_expert_two_episodes(tmp_path):
    out = tmp_path / "pusht.zarr"
    summary = collect_pusht(PushTCollectConfig(out=str(out), episodes=2, seed=0, progress=False))
    buffer = ReplayBuffer.open(out, keys=("state", "keypoint", "action", "img", "n_contacts"))
    assert summary.attempted == 2 and summary.kept == buffer.n_episodes == summary.succeeded
    assert buffer.n_episodes >= 1 and not (out.parent / "pusht.zarr.partial").exists()
    steps = buffer.n_steps
    expected = {"state": ((steps, 5), np.float32), "keypoint": ((steps, 9, 2), np.float32),
                "action": ((steps, 2), np.float32), "img": ((steps, 96, 96, 3), np.uint8),
                "n_contacts": ((steps, 1), np.float32)}
    assert {k: (buffer[k].shape, buffer[k].dtype) for k in buffer.keys()} == expected
    attrs = buffer.attrs
    assert attrs["complete"] is True and attrs["seed"] == 0 and attrs["n_seeds"] == 2
    assert attrs["attempted"] == 2 and attrs["expert_version"] and len(attrs["source_sha256"]) == 16
    assert attrs["obs_types"] == ["state", "keypoints", "image"]
    assert buffer.episode_meta("success").all()
    # DP convention: row t holds the state before action t; replaying the actions reproduces the states.
    seed = int(buffer.episode_meta("seed")[0])
    episode = buffer.get_episode(0)
    env = PushTEnv(obs_type="keypoints")
    obs, info = env.reset(seed=seed)
    np.testing.assert_array_equal(episode["keypoint"][0], obs["keypoint"])
    for t, action in enumerate(episode["action"]):
        np.testing.assert_array_equal(episode["state"][t], info["state"].astype(np.float32))
        _, _, terminated, _, info = env.step(action)
    assert terminated and info["is_success"]  # the episode ends at its first success


def test_interrupt_leaves_only_partial(tmp_path, monkeypatch):
    # episode 0 is on disk when 1 is interrupted
    monkeypatch.setattr("drifting_policy.collect.pusht.WRITE_EVERY", 1)
    out, partial = tmp_path / "d.zarr", tmp_path / "d.zarr.partial"
    config = PushTCollectConfig(out=str(out), episodes=3, seed=5, render_images=False, keep_failed=True,
                                max_steps=4, progress=False)
    episode = iter(range(3))

    def interrupted_in_second_episode(rng, noise_std):
        return StayExpert(fail_at=2 if next(episode) == 1 else None)

    with pytest.raises(KeyboardInterrupt):
        collect_pusht(config, expert_factory=interrupted_in_second_episode)
    assert partial.exists() and not out.exists()
    with pytest.raises(ValueError, match="interrupted"):
        ReplayBuffer.open(partial)
    assert ReplayBuffer.open(partial, allow_incomplete=True).n_episodes == 1
    summary = collect_pusht(config, expert_factory=lambda rng, noise_std: StayExpert())  # rerun replaces it
    assert not partial.exists() and summary.kept == 3
    buffer = ReplayBuffer.open(out)
    np.testing.assert_array_equal(buffer.episode_ends, [4, 8, 12])
    np.testing.assert_array_equal(buffer.episode_meta("seed"), [5, 6, 7])
    assert not buffer.episode_meta("success").any() and "keypoint" in buffer and "img" not in buffer


def test_overwrite_and_failed_only(tmp_path):
    out = tmp_path / "d.zarr"
    config = dict(out=str(out), episodes=1, render_images=False, max_steps=3, progress=False)

    def stay(rng, noise_std):
        return StayExpert()

    with pytest.raises(RuntimeError, match="no episode kept"):
        collect_pusht(PushTCollectConfig(**config), expert_factory=stay)
    assert not out.exists()
    collect_pusht(PushTCollectConfig(**config, keep_failed=True), expert_factory=stay)
    with pytest.raises(FileExistsError, match="overwrite=true"):
        collect_pusht(PushTCollectConfig(**config, keep_failed=True), expert_factory=stay)
    collect_pusht(PushTCollectConfig(**config, keep_failed=True, overwrite=True, obs_types=("state",)),
                  expert_factory=stay)
    assert ReplayBuffer.open(out).keys() == ["action", "n_contacts", "state"]


@pytest.mark.parametrize(("seed", "episodes"), [(99_999, 2), (-1, 1), (100_000, 1)])
def test_train_seeds_stay_below_test_seeds(seed, episodes):
    with pytest.raises(ValueError, match="evaluation seeds"):
        PushTCollectConfig(out="x.zarr", seed=seed, episodes=episodes)


def test_out_must_be_a_zarr_store():
    assert PushTCollectConfig().out == "data/pusht/pusht_scripted.zarr"
    with pytest.raises(ValueError, match=r"out=<path>\.zarr"):
        PushTCollectConfig(out="data/pusht/demos.hdf5")


def test_dispatch_errors(monkeypatch):
    with pytest.raises(ValueError, match="task='walk'"):
        cli.run_collect({"task": "walk"})
    monkeypatch.setitem(cli.COLLECTORS, "lift", "envs.robomimic.no_such_collector")
    with pytest.raises(RuntimeError, match="envs.robomimic.no_such_collector"):
        cli.run_collect({"task": "lift"})
    with pytest.raises(ValueError, match="unknown settings"):
        cli.run_collect({"task": "pusht", "out": "x.zarr", "camera": "agentview"})


def test_console_entry_point(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["drifting-collect", "task=pusht", "episodes=1", "seed=3", "max_steps=2",
                                      "keep_failed=true", "render_images=false", "progress=false"])
    cli.main()
    buffer = ReplayBuffer.open(tmp_path / "data" / "pusht" / "pusht_scripted.zarr")
    assert buffer.n_steps == 2 and buffer.attrs["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no hydra outputs/ left behind


def test_a_collection_killed_for_real_is_marked_incomplete_and_a_rerun_recovers(tmp_path):
    """SIGKILL a real drifting-collect once its first episodes are on disk: no store at `out`, the partial
    one refuses to open, and the same command again collects exactly what an uninterrupted run collects."""
    import os
    import signal
    import subprocess
    import time

    # more episodes than one write batch (WRITE_EVERY = 16): the first batch lands on disk with episodes still
    # to collect, so the kill below always falls inside the run (with fewer, the only write is the last one
    # and the kill could land between marking the store complete and renaming it)
    episodes = WRITE_EVERY + 4

    def command(out):
        return [sys.executable, "-m", "drifting_policy.collect.cli", "task=pusht", f"episodes={episodes}",
                "seed=11", f"out={out}", "render_images=false", "progress=false"]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out, partial = tmp_path / "killed.zarr", tmp_path / "killed.zarr.partial"
    process = subprocess.Popen(command(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (partial / "meta" / "episode_ends").exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert partial.exists() and not out.exists()
    with pytest.raises(ValueError, match="interrupted"):
        ReplayBuffer.open(partial)
    subprocess.run(command(out), env=env, check=True, capture_output=True, timeout=120)
    reference = tmp_path / "reference.zarr"
    subprocess.run(command(reference), env=env, check=True, capture_output=True, timeout=120)
    recovered, expected = ReplayBuffer.open(out), ReplayBuffer.open(reference)
    assert not partial.exists() and recovered.n_episodes == episodes
    for key in expected.keys():
        np.testing.assert_array_equal(recovered[key][:], expected[key][:])


def test_execution_noise_moves_the_agent_but_the_label_stays_the_experts(tmp_path):
    """DART-style recovery data: a StayExpert commands the agent's current position, so without noise the
    agent never moves; with execution noise it wanders, and every recorded action is still exactly the
    expert's command at the recorded state (its position), not the perturbed one that was executed."""
    def stay(rng, noise_std):
        return StayExpert()

    stores = {}
    for sigma in (0.0, 15.0):
        out = tmp_path / f"sigma{sigma}.zarr"
        collect_pusht(PushTCollectConfig(out=str(out), episodes=1, seed=4, render_images=False, max_steps=40,
                                         keep_failed=True, execution_noise_std=sigma, progress=False),
                      expert_factory=stay)
        stores[sigma] = ReplayBuffer.open(out)
    still, moved = stores[0.0]["state"][:], stores[15.0]["state"][:]
    assert np.ptp(still[:, :2], axis=0).max() < 1e-3  # the agent stands still
    assert np.ptp(moved[:, :2], axis=0).max() > 5.0  # execution noise moved it
    np.testing.assert_allclose(stores[15.0]["action"][:], moved[:, :2], atol=1e-4)  # label = expert command
    assert stores[15.0].attrs["execution_noise_std"] == 15.0


def test_source_digest_follows_the_env_code_not_the_collector(tmp_path):
    """The stores' source_sha256 names the env + expert code they came from (it used to hash the collector's
    own folder, so an expert change left it unchanged)."""
    import shutil
    from pathlib import Path

    import envs.pusht
    from drifting_policy.collect import pusht as pusht_collect
    from drifting_policy.collect.settings import source_digest

    assert pusht_collect.env_package() == Path(envs.pusht.__file__).parent
    copy = tmp_path / "pusht"
    shutil.copytree(pusht_collect.env_package(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert source_digest(pusht_collect.env_package()) == source_digest(copy)
    (copy / "expert.py").write_text((copy / "expert.py").read_text() + "\n# changed\n")
    assert source_digest(copy) != source_digest(pusht_collect.env_package())

"""Evaluation runner: protocol (slicing, max-reward score, success), determinism, CI helpers, videos."""

import json

import numpy as np
import pytest
import torch
from training_fakes import (
    FAKE_ENV_ID,
    GOAL,
    FakeReachEnv,
    TinyConfig,
    TinyPolicy,
)

from drifting_policy.common.stats import bootstrap_mean_ci, wilson_interval
from drifting_policy.evaluation.runner import EnvRunner, RunnerConfig


def reach_runner(**overrides) -> EnvRunner:
    options = dict(env_id=FAKE_ENV_ID, env_module=None, seed_start=1000, n_seeds=5, max_steps=20,
                   obs_horizon=2, action_horizon=4, n_envs=2)
    options.update(overrides)
    return EnvRunner(RunnerConfig(**options))


class GoalPolicy(TinyPolicy):
    """Commands GOAL at the executed slice and a far-away target elsewhere (catches wrong slicing)."""

    def predict_action(self, obs, generator=None):
        batch = len(obs["pos"])
        chunk = torch.full((batch, self.config.prediction_horizon, 2), 5.0)
        first = self.config.obs_horizon - 1
        chunk[:, first:first + self.config.action_horizon] = torch.from_numpy(GOAL)
        return chunk


def test_executes_the_dp_slice_and_scores_success():
    result = reach_runner().run_episodes(GoalPolicy(TinyConfig(noise_std=0.0)))
    assert result.seeds == list(range(1000, 1005))
    assert all(result.successes) and all(score > 0.9 for score in result.scores)  # coverage > 1 - 0.05 / 0.5
    # halving the distance each step: success (< 0.05) takes at most 6 steps from anywhere in [-1, 1]^2
    assert all(1 <= steps <= 8 for steps in result.episode_steps)


def test_wrong_slice_fails_and_metrics_are_flat_floats():
    class Shifted(GoalPolicy):
        def predict_action(self, obs, generator=None):
            return super().predict_action(obs, generator).roll(1, dims=1)  # goal moves off the slice start

    metrics = reach_runner(prefix="test/").run(Shifted(TinyConfig(noise_std=0.0)))
    assert metrics["test/success_rate"] < 1.0
    assert all(isinstance(v, float) for v in metrics.values())
    low, high = metrics["test/mean_score_ci_low"], metrics["test/mean_score_ci_high"]
    assert low <= metrics["test/mean_score"] <= high


def test_episode_score_is_max_reward_and_truncation():
    class StayPolicy(TinyPolicy):  # commands its current position: never moves, never succeeds
        def predict_action(self, obs, generator=None):
            pos = torch.as_tensor(obs["pos"])[:, -1:]  # [B, 1, 2]
            return pos.expand(-1, self.config.prediction_horizon, -1).clone()

    runner = reach_runner(max_steps=10)
    result = runner.run_episodes(StayPolicy())
    rng = [np.random.RandomState(s).uniform(-1, 1, size=2).astype(np.float32) for s in runner.config.seeds]
    expected = [float(np.clip(1 - np.linalg.norm(p - GOAL) / 0.5, 0, 1)) for p in rng]
    np.testing.assert_allclose(result.scores, expected, atol=1e-6)
    assert result.episode_steps == [10] * 5 and not any(result.successes)


def test_deterministic_given_seeds_and_sampling_seed():
    policy = TinyPolicy(TinyConfig(noise_std=0.3))
    torch.nn.init.zeros_(policy.linear.weight)
    with torch.no_grad():
        policy.linear.bias.copy_(torch.from_numpy(np.tile(GOAL, 6)))
    first = reach_runner().run_episodes(policy)
    second = reach_runner().run_episodes(policy)
    other = reach_runner(sampling_seed=1).run_episodes(policy)
    assert first.scores == second.scores and first.episode_steps == second.episode_steps
    assert first.episode_steps != other.episode_steps or first.scores != other.scores
    assert policy.resets == 3 * 3  # reset once per batch of episodes (5 seeds in batches of 2)


def test_horizon_mismatch_is_reported():
    with pytest.raises(ValueError, match="obs_horizon"):
        reach_runner(obs_horizon=3).run(TinyPolicy())


def test_videos_written_for_first_episodes(tmp_path):
    result = reach_runner(n_videos=3).run_episodes(GoalPolicy(TinyConfig(noise_std=0.0)), video_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed_1000.gif", "seed_1001.gif", "seed_1002.gif"]
    assert len(result.videos) == 3
    payload = json.loads(json.dumps(result.to_json()))
    assert payload["metrics"]["eval/success_rate"] == 1.0 and len(payload["scores"]) == 5


def test_interval_helpers():
    low, high = wilson_interval(0, 50)
    assert low == 0.0 and 0.05 < high < 0.08  # Wilson upper bound for 0/50 is ~0.071
    low, high = wilson_interval(25, 50)
    assert low == pytest.approx(1 - high, abs=1e-9)
    values = np.array([0.0, 1.0] * 25)
    low, high = bootstrap_mean_ci(values, n_bootstrap=20000)
    # 50 fair coin flips: the normal approximation gives 0.5 +- 1.96 * 0.5 / sqrt(50) = [0.361, 0.639]
    assert low == pytest.approx(0.361, abs=0.02) and high == pytest.approx(0.639, abs=0.02)


def test_async_vector_env_matches_sync():
    policy = TinyPolicy(TinyConfig(noise_std=0.3))
    sync = reach_runner(n_seeds=3, n_envs=3).run_episodes(policy)
    async_ = reach_runner(n_seeds=3, n_envs=3, vector_mode="async").run_episodes(policy)
    assert sync.scores == async_.scores and sync.episode_steps == async_.episode_steps


def test_info_metrics_are_episode_maxima_averaged():
    policy = GoalPolicy(TinyConfig(noise_std=0.0))
    result = reach_runner(info_metrics=("coverage", "is_success")).run_episodes(policy)
    metrics = result.metrics()
    assert metrics["eval/coverage"] == pytest.approx(metrics["eval/mean_max_coverage"])
    assert result.info_maxima["is_success"] == [1.0] * 5 and metrics["eval/is_success"] == 1.0
    with pytest.raises(ValueError, match="info_metrics names 'p2'"):
        reach_runner(info_metrics=("p2",)).run(policy)


def test_info_records_keep_each_episode_last_step():
    # episodes end at different steps in one vector env: an env that finished first is auto-reset while the
    # other runs on, so a record taken after its episode ended would read the reset's is_success=False
    result = reach_runner(info_records=("is_success", "coverage")).run_episodes(
        GoalPolicy(TinyConfig(noise_std=0.0)))
    assert result.info_records["is_success"] == [True] * 5
    assert all(isinstance(c, float) and c > 0.9 for c in result.info_records["coverage"])
    assert json.loads(json.dumps(result.to_json()))["info_records"]["is_success"] == [True] * 5
    with pytest.raises(ValueError, match="info_records names 'order'"):
        reach_runner(info_records=("order",)).run(GoalPolicy(TinyConfig(noise_std=0.0)))


def test_finished_episodes_are_held_not_simulated(monkeypatch):
    # seed 1000's env is told to stay where it is (never succeeds: truncated at max_steps); the others reach
    # the goal in a few steps and must then wait without being reset or stepped again
    class StayOnFirst(GoalPolicy):
        def predict_action(self, obs, generator=None):
            chunk = super().predict_action(obs, generator)
            stay = torch.as_tensor(obs["pos"])[:, -1:]  # [B, 1, 2]
            first_obs = torch.as_tensor(obs["pos"])[:, 0]
            is_first = torch.all(torch.isclose(first_obs, torch.from_numpy(self.start_1000)), dim=-1)
            return torch.where(is_first[:, None, None], stay.expand_as(chunk), chunk)

    calls = {"step": 0, "reset": 0}
    original_step, original_reset = FakeReachEnv.step, FakeReachEnv.reset

    def counted_step(self, action):
        calls["step"] += 1
        return original_step(self, action)

    def counted_reset(self, **kwargs):
        calls["reset"] += 1
        return original_reset(self, **kwargs)

    monkeypatch.setattr(FakeReachEnv, "step", counted_step)
    monkeypatch.setattr(FakeReachEnv, "reset", counted_reset)
    policy = StayOnFirst(TinyConfig(noise_std=0.0))
    policy.start_1000 = np.random.RandomState(1000).uniform(-1, 1, size=2).astype(np.float32)
    batched = reach_runner(n_seeds=4, n_envs=4).run_episodes(policy)
    assert batched.successes == [False, True, True, True] and batched.episode_steps[0] == 20
    assert calls == {"step": sum(batched.episode_steps), "reset": 4}  # one seeded reset per episode
    alone = reach_runner(n_seeds=4, n_envs=1).run_episodes(policy)
    assert alone.scores == batched.scores and alone.episode_steps == batched.episode_steps

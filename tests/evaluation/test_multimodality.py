import numpy as np
import pytest
import torch

from drifting_policy.evaluation.multimodality import (
    NOISE,
    ModeConfig,
    chunk_distances,
    compare_to_expert,
    count_modes,
    dbscan,
    expert_first_chunks,
    is_bimodal,
    policy_obs,
    sample_policy_chunks,
)

T, A = 8, 2


def line_chunks(n: int, direction, rng: np.random.Generator, noise: float = 3.0, start=(256.0, 256.0)):
    """n straight-line chunks [n, T, A] from `start` along `direction` (px per step), with per-step noise."""
    steps = np.arange(1, T + 1)[:, None] * np.asarray(direction, dtype=np.float64)  # [T, A]
    return np.asarray(start) + steps[None] + noise * rng.standard_normal((n, T, A))


def bimodal(n: int, p_left: float, rng: np.random.Generator) -> np.ndarray:
    n_left = int(round(p_left * n))
    return np.concatenate([line_chunks(n_left, (-15, 0), rng), line_chunks(n - n_left, (15, 0), rng)])


def test_chunk_distance_is_mean_per_step_euclidean():
    a = np.zeros((1, T, A))
    b = np.zeros((1, T, A))
    b[0, :, 0] = 3.0
    b[0, :, 1] = 4.0
    b[0, 0] = 0.0  # first step identical: mean of one 0 and seven 5s
    assert chunk_distances(a, b)[0, 0] == pytest.approx(5.0 * 7 / 8)
    with pytest.raises(ValueError, match=r"\[S, T, A\]"):
        chunk_distances(np.zeros((2, T)), None)


def test_unimodal_sampler_gives_one_mode():
    samples = line_chunks(64, (10, 5), np.random.default_rng(0), noise=6.0)
    modes = count_modes(samples)
    assert modes.n_modes == 1
    assert modes.weights[0] >= 0.95
    assert modes.centres.shape == (1, T, A)


def test_bimodal_sampler_gives_two_modes_with_correct_weights():
    rng = np.random.default_rng(1)
    for p_left in (0.5, 0.7, 0.25):
        samples = rng.permutation(bimodal(200, p_left, rng))
        modes = count_modes(samples)
        assert modes.n_modes == 2
        assert modes.unassigned == 0.0
        assert sorted(modes.weights) == pytest.approx(sorted([p_left, 1 - p_left]), abs=1e-9)
        # the heavier mode's centre sits on its line: last step at +-15*T px from the start in x
        heavy_x = -15 * T if p_left > 0.5 else 15 * T
        if p_left != 0.5:
            assert modes.centres[0, -1, 0] - 256 == pytest.approx(heavy_x, abs=3.0)


def test_regression_like_sampler_gives_one_mode_and_is_off_both_expert_modes():
    rng = np.random.default_rng(2)
    expert = count_modes(bimodal(100, 0.5, rng))
    mean_chunk = np.repeat(expert.centres.mean(axis=0)[None], 64, axis=0)  # deterministic: mean of modes
    modes = count_modes(mean_chunk)
    assert modes.n_modes == 1 and modes.weights[0] == 1.0
    match = compare_to_expert(mean_chunk, expert)
    assert match.off_mode == 1.0 and match.tv == 1.0
    assert np.all(np.isnan(match.centre_px))
    assert match.between == 1.0
    # even with a radius wider than the gap, the midpoint is as far from both modes: still off-mode
    assert compare_to_expert(mean_chunk, expert, ModeConfig(match_px=1e4)).off_mode == 1.0
    assert compare_to_expert(mean_chunk, expert, ModeConfig(match_px=1e4, match_ratio=1.0)).off_mode == 0.0


def test_compare_to_expert_weights_tv_and_centres():
    rng = np.random.default_rng(3)
    expert = count_modes(bimodal(200, 0.5, rng))
    policy = bimodal(100, 0.8, rng)  # both modes, wrong weights
    match = compare_to_expert(policy, expert)
    assert sorted(match.weights) == pytest.approx([0.2, 0.8])
    assert match.off_mode == pytest.approx(0.0)
    assert match.tv == pytest.approx(0.3)
    assert np.all(match.centre_px < 3.0)
    assert match.between == 0.0
    collapsed = line_chunks(50, (15, 0), rng)  # one mode only
    assert compare_to_expert(collapsed, expert).tv == pytest.approx(0.5)


def test_light_clusters_and_isolated_samples_are_not_modes():
    rng = np.random.default_rng(4)
    samples = np.concatenate([line_chunks(95, (0, 15), rng), line_chunks(5, (0, -15), rng)])
    modes = count_modes(samples, ModeConfig(min_weight=0.1))
    assert modes.n_modes == 1
    assert modes.unassigned == pytest.approx(0.05)
    assert np.all(modes.labels[95:] == NOISE)
    assert not is_bimodal(modes)


def test_dbscan_chains_a_connected_cloud_and_splits_at_a_gap():
    x = np.concatenate([np.arange(0, 100, 5.0), np.arange(200, 260, 5.0)])  # two runs of points 5 apart
    dist = np.abs(x[:, None] - x[None])
    labels = dbscan(dist, eps=6.0, min_samples=2)
    assert len(set(labels[:20])) == 1 and len(set(labels[20:])) == 1 and labels[0] != labels[-1]


def test_count_modes_is_deterministic():
    samples = bimodal(80, 0.4, np.random.default_rng(5))
    a, b = count_modes(samples), count_modes(samples.copy())
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.weights, b.weights)


def test_config_checks():
    with pytest.raises(ValueError, match="eps_px"):
        ModeConfig(eps_px=0.0)
    with pytest.raises(ValueError, match="min_weight"):
        ModeConfig(min_weight=1.5)
    with pytest.raises(ValueError, match="match_ratio"):
        ModeConfig(match_ratio=0.0)


class _ToyPolicy(torch.nn.Module):
    """Stand-in with the policy interface: a bimodal sampler whose side follows the generator."""

    class config:
        obs_horizon = 2

    def predict_action(self, obs, generator=None):
        agent = obs["agent_pos"]  # [B, obs_horizon, 2]
        assert agent.shape[1] == 2 and torch.equal(agent[:, 0], agent[:, 1])  # first obs repeated
        side = torch.randint(0, 2, (agent.shape[0], 1, 1), generator=generator) * 2.0 - 1.0
        steps = torch.arange(16, dtype=torch.float32)[None, :, None]  # [1, 16, 1]
        return agent[:, -1:, :] + side * 15.0 * steps * torch.tensor([1.0, 0.0])


def test_policy_obs_repeats_first_observation_and_sampling_is_seeded():
    obs = {"agent_pos": np.array([100.0, 200.0], np.float32), "keypoint": np.zeros((9, 2), np.float32)}
    stacked = policy_obs(obs, 2, 5)
    assert stacked["agent_pos"].shape == (5, 2, 2) and stacked["keypoint"].shape == (5, 2, 9, 2)
    policy = _ToyPolicy()
    a = sample_policy_chunks(policy, obs, 64, seed=0)
    assert a.shape == (64, 15, 2)  # aligned from prediction index obs_horizon - 1
    assert np.array_equal(a, sample_policy_chunks(policy, obs, 64, seed=0))
    assert not np.array_equal(a, sample_policy_chunks(policy, obs, 64, seed=1))
    assert count_modes(a[:, :T]).n_modes == 2


def test_expert_first_chunks_shapes_and_reproducible():
    a = expert_first_chunks(5000, range(2), n_steps=4)
    b = expert_first_chunks(5000, range(2), n_steps=4)
    assert a.chunks.shape == (2, 4, 2) and a.first_edges.shape == (2,)
    assert np.array_equal(a.chunks, b.chunks)
    assert a.obs["keypoint"].shape == (9, 2) and a.block_pose.shape == (3,)


def test_main_find_smoke(tmp_path, capsys):
    from drifting_policy.evaluation.multimodality import main

    main(["--find", "5009:5010", "--search-expert-seeds", "0:3", "--window", "3", "--out", str(tmp_path)])
    assert '"bimodal_states"' in capsys.readouterr().out
    assert (tmp_path / "bimodal_states.json").is_file()

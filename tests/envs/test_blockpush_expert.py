import numpy as np
import pytest

from envs.blockpush.env import BlockPushEnv
from envs.blockpush.expert import BlockPushExpert
from envs.blockpush.planner import Router, segment_distance


def _rollout(seed, noise_std=0.0):
    env = BlockPushEnv(render_mode=None)
    expert = BlockPushExpert(np.random.default_rng(seed), noise_std=noise_std)
    env.reset(seed=seed)
    actions = []
    for _ in range(env.config.max_episode_steps):
        actions.append(expert.act(env))
        _, _, terminated, truncated, info = env.step(actions[-1])
        if terminated or truncated:
            break
    return info, np.array(actions), expert


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expert_reaches_p2_in_the_order_and_zones_it_chose(seed):
    info, actions, expert = _rollout(seed)
    assert info["p2"] == 1.0 and len(actions) < 300
    assert info["first_block"] == expert.order[0]
    assert info["zones"].tolist() == list(expert.assignment)
    assert actions.dtype == np.float32


def test_expert_is_deterministic_and_noise_changes_actions():
    _, first, _ = _rollout(5)
    _, second, _ = _rollout(5)
    np.testing.assert_array_equal(first, second)
    info, noisy, _ = _rollout(5, noise_std=0.005)
    assert info["p2"] == 1.0 and not np.array_equal(noisy[:10], first[:10])


def test_order_and_assignment_vary_over_seeds():
    modes = set()
    for seed in range(32):
        expert = BlockPushExpert(np.random.default_rng(seed))
        assert sorted(expert.order) == [0, 1] and sorted(expert.assignment) == [0, 1]
        modes.add((expert.order[0], expert.assignment[0]))
    assert modes == {(0, 0), (0, 1), (1, 0), (1, 1)}  # both orders x both assignments


def test_router_goes_around_a_cube():
    router = Router(radius=0.05)
    start, goal, cube = np.array([0.4, -0.2]), np.array([0.4, 0.0]), np.array([[0.4, -0.1]])
    path = router.route(start, goal, cube, np.random.default_rng(0))
    points = [start, *path]
    assert np.allclose(path[-1], goal) and len(path) > 1
    for a, b in zip(points[:-1], points[1:], strict=False):
        assert segment_distance(a, b, cube)[0] >= 0.05 - 1e-9


def test_negative_noise_is_refused():
    with pytest.raises(ValueError, match="noise_std"):
        BlockPushExpert(np.random.default_rng(0), noise_std=-1.0)

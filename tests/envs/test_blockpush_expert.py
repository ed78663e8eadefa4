from types import SimpleNamespace

import numpy as np
import pytest
import torch

from drifting_policy.evaluation.runner import EnvRunner, RunnerConfig
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


class ExpertAsPolicy(torch.nn.Module):
    """The expert driven from the env's observations only, as a policy: shows they hold all it needs."""

    name = "expert"

    def __init__(self, stay: bool = False):
        super().__init__()
        self.config = SimpleNamespace(obs_horizon=1, action_horizon=1, prediction_horizon=1)
        self.stay, self.experts = stay, []

    def reset(self) -> None:
        self.experts = []

    def predict_action(self, obs, generator=None):
        blocks, targets, pusher = (obs[key][:, -1].double().numpy()
                                   for key in ("block_pose", "target_pose", "effector_pos"))
        if not self.experts:
            self.experts = [BlockPushExpert(np.random.default_rng(i)) for i in range(len(pusher))]
        actions = [pusher[i] if self.stay else expert.clean_action(blocks[i], targets[i], pusher[i])
                   for i, expert in enumerate(self.experts)]
        return torch.as_tensor(np.array(actions), dtype=torch.float32)[:, None]  # [B, 1, 2]


def test_runner_reports_p1_and_p2_for_the_expert_from_observations():
    options = dict(env_id="envs/BlockPush-v0", env_module="envs.blockpush", seed_start=100_000, n_seeds=2,
                   max_steps=350, obs_horizon=1, action_horizon=1, n_envs=2, success_key="p2",
                   coverage_key=None, info_metrics=("p1", "p2"))
    metrics = EnvRunner(RunnerConfig(**options)).run(ExpertAsPolicy())
    assert metrics["eval/p1"] == metrics["eval/p2"] == metrics["eval/success_rate"] == 1.0
    assert metrics["eval/mean_score"] == 1.0
    idle = EnvRunner(RunnerConfig(**{**options, "max_steps": 5})).run(ExpertAsPolicy(stay=True))
    assert idle["eval/p1"] == idle["eval/p2"] == idle["eval/mean_score"] == 0.0

import gymnasium
import numpy as np
import pytest

import envs.blockpush  # noqa: F401  (registers envs/BlockPush-v0)
from envs.blockpush.env import (
    BLOCK_CENTRE,
    BLOCK_SHIFT,
    MIN_BLOCK_DIST,
    PUSHER_START,
    BlockPushEnv,
    phase_indicators,
    sample_layout,
)
from envs.blockpush.scene import BLOCK_HALF, GOAL_TOLERANCE, WORKSPACE_HIGH, WORKSPACE_LOW

TARGETS = np.array([[0.28, 0.2, np.pi], [0.52, 0.2, np.pi]])
FAR = np.array([[0.35, -0.3, 0.0], [0.5, -0.3, 0.0]])  # two cubes far from both zones
CORNER = [0.65, -0.45]  # a pusher position that touches nothing


def _reset(env, blocks=FAR, pusher=CORNER):
    return env.reset(seed=0, options={"block_poses": blocks, "target_poses": TARGETS, "pusher_pos": pusher})


def test_reset_is_deterministic_under_a_seed_and_so_are_steps():
    def trajectory(seed):
        env = BlockPushEnv(render_mode=None)
        obs, _ = env.reset(seed=seed)
        rows = [np.concatenate([v.ravel() for v in obs.values()])]
        for step in range(20):  # drive into the scene, so contacts happen
            obs, *_ = env.step(obs["block_pose"][step % 2, :2])
            rows.append(np.concatenate([v.ravel() for v in obs.values()]))
        return np.array(rows)

    first, second, other = trajectory(7), trajectory(7), trajectory(8)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first[0], other[0])


def test_layout_follows_ibc_ranges():
    rng = np.random.default_rng(0)
    sides = set()
    for _ in range(300):
        blocks, targets = sample_layout(rng)
        assert np.all(np.abs(blocks[:, :2] - BLOCK_CENTRE) <= BLOCK_SHIFT)
        assert np.linalg.norm(blocks[0, :2] - blocks[1, :2]) > MIN_BLOCK_DIST
        assert abs(abs(targets[0, 0] - targets[1, 0]) - 0.24) < 0.011 and np.allclose(targets[:, 1], 0.2,
                                                                                        atol=0.0075)
        sides.add(bool(targets[0, 0] < targets[1, 0]))
    assert sides == {True, False}  # zone 0 is drawn on either side


def test_observation_layout_matches_the_space():
    env = gymnasium.make("envs/BlockPush-v0", disable_env_checker=True)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert {k: v.shape for k, v in obs.items()} == {"block_pose": (2, 3), "effector_pos": (2,),
                                                    "effector_target": (2,), "target_pose": (2, 3)}
    np.testing.assert_allclose(obs["effector_pos"], PUSHER_START)
    assert np.all((obs["block_pose"][:, 2] >= 0) & (obs["block_pose"][:, 2] < np.pi / 2))
    assert info["p1"] == info["p2"] == 0.0 and info["first_block"] == -1
    assert env.render().shape == (192, 192, 3)


def test_one_block_in_a_zone_gives_p1_only():
    env = BlockPushEnv(render_mode=None)
    blocks = FAR.copy()
    blocks[1, :2] = TARGETS[0, :2] + [0.03, 0.02]  # 0.036 from the centre: inside
    _, info = _reset(env, blocks)
    assert (info["p1"], info["p2"], info["is_success"]) == (1.0, 0.0, False)
    assert info["zones"].tolist() == [-1, 0] and info["first_block"] == 1
    _, reward, terminated, _, _ = env.step(CORNER)
    assert reward == 0.5 and not terminated


@pytest.mark.parametrize("zones", [(0, 1), (1, 0)])
def test_both_blocks_in_distinct_zones_give_p2_either_way(zones):
    env = BlockPushEnv(render_mode=None)
    blocks = FAR.copy()
    blocks[0, :2], blocks[1, :2] = TARGETS[zones[0], :2], TARGETS[zones[1], :2] + [0.0, -0.045]
    _reset(env, blocks)
    _, reward, terminated, truncated, info = env.step(CORNER)
    assert info["zones"].tolist() == list(zones) and info["p2"] == 1.0 and info["is_success"]
    assert reward == 1.0 and terminated and not truncated


def test_zone_edge_and_shared_zone():
    env = BlockPushEnv(render_mode=None)
    blocks = FAR.copy()
    blocks[0, :2] = TARGETS[0, :2] + [GOAL_TOLERANCE + 0.002, 0.0]
    _, info = _reset(env, blocks)
    assert info["p1"] == 0.0  # just outside the tolerance
    assert phase_indicators(np.array([1, 1])) == (True, False)  # one zone holds no two cubes' success
    assert phase_indicators(np.array([-1, -1])) == (False, False)


def test_pusher_tracks_its_target_and_is_clipped_to_the_workspace():
    env = BlockPushEnv(render_mode=None)
    _reset(env)
    for _ in range(10):
        obs, *_ = env.step([0.2, 0.3])
    np.testing.assert_allclose(obs["effector_pos"], [0.2, 0.3], atol=1e-3)
    np.testing.assert_allclose(obs["block_pose"][:, :2], FAR[:, :2], atol=1e-6)  # nothing was touched
    obs, *_ = env.step([5.0, -5.0])
    np.testing.assert_allclose(obs["effector_target"], [WORKSPACE_HIGH[0], WORKSPACE_LOW[1]])


def test_driving_through_a_block_pushes_it_along_the_table():
    env = BlockPushEnv(render_mode=None)
    _reset(env, pusher=[0.35, -0.4])
    for step in range(1, 16):
        env.step([0.35, -0.4 + 0.015 * step])  # straight through cube 0's centre, 0.225 m in total
    poses = env.world.block_poses()
    assert poses[0, 1] - FAR[0, 1] > 0.1  # pushed forward ...
    assert abs(poses[0, 0] - FAR[0, 0]) < 0.03  # ... mostly straight (a centred push on a face)
    np.testing.assert_allclose(poses[1], FAR[1], atol=1e-6)  # the other cube stayed
    np.testing.assert_allclose(env.world.block_heights(), BLOCK_HALF, atol=1e-3)  # on the table, not tipped


def test_truncation_and_bad_actions():
    env = BlockPushEnv(max_episode_steps=3, render_mode=None)
    _reset(env)
    flags = [env.step(CORNER)[3] for _ in range(3)]
    assert flags == [False, False, True]
    with pytest.raises(ValueError, match="finite"):
        env.step([np.nan, 0.0])
    with pytest.raises(ValueError, match="block_poses"):
        env.reset(options={"block_poses": [0.4, -0.2]})

import gymnasium
import numpy as np
import pytest

import envs.pusht  # noqa: F401  (registers envs/PushT-v0)
from envs.pusht.env import SUBSTEPS, PushTEnv, PushTWorld, legacy_initial_state
from envs.pusht.geometry import (
    BLOCK_COG,
    BLOCK_KEYPOINTS,
    GOAL_POSE,
    CoverageMeter,
    block_outline,
    dp_style_keypoints,
    rotation,
)
from envs.pusht.render import GOAL_COLOR

FAR = [60.0, 60.0]  # an agent position that touches nothing


def _state(agent, block_pose):
    return np.array([*agent, *block_pose], dtype=np.float64)


def test_agent_reaches_commanded_target():
    env = PushTEnv()
    env.reset(options={"reset_to_state": _state(FAR, (350, 150, 0.0))})
    for _ in range(15):
        env.step(np.array([150.0, 120.0], dtype=np.float32))
    assert np.allclose(env.get_state()[:2], [150.0, 120.0], atol=0.05)
    assert np.allclose(env.get_state()[2:], [350, 150, 0.0], atol=1e-9)  # nothing touched the block


def test_pd_tracking_lags_like_critically_damped_second_order():
    # acc = 100 (a - p) - 20 v: omega = 10 rad/s, zeta = 1; after 0.1 s a step response covers ~26%.
    env = PushTEnv()
    env.reset(options={"reset_to_state": _state(FAR, (350, 150, 0.0))})
    env.step([160.0, 60.0])
    frac = (env.get_state()[0] - 60.0) / 100.0
    assert 0.2 < frac < 0.35


def test_block_stays_inside_walls_under_random_actions():
    # Random-walk targets, as a teleoperator moves. (A kinematic agent commanded far beyond the block
    # can squeeze it partly through a 2 px wall, as in DP; its centre of gravity still stays inside.)
    env = PushTEnv()
    rng = np.random.default_rng(0)
    for seed in (1, 2, 3):
        env.reset(seed=seed)
        for step in range(200):
            if step < 100:
                action = env.get_state()[:2] + rng.normal(0, 25, 2)
            else:
                action = rng.uniform(0, 512, 2)
            env.step(np.clip(action, 0, 512))
            pose = env.get_state()[2:]
            if step < 100:
                outline = block_outline(pose)
                assert outline.min() > 5.0 and outline.max() < 507.0
            cog = pose[:2] + rotation(pose[2]) @ np.array(BLOCK_COG)
            assert cog.min() > 5.0 and cog.max() < 506.0


def test_goal_pose_gives_full_coverage_and_success():
    env = PushTEnv()
    _, info = env.reset(options={"reset_to_state": _state(FAR, GOAL_POSE)})
    assert info["coverage"] == pytest.approx(1.0, abs=1e-9) and info["is_success"]
    _, reward, terminated, truncated, info = env.step(FAR)
    assert reward == 1.0 and terminated and not truncated
    assert CoverageMeter()((GOAL_POSE[0] + 10, GOAL_POSE[1], GOAL_POSE[2])) < 0.95


def test_truncates_at_max_episode_steps():
    env = PushTEnv(max_episode_steps=3)
    env.reset(seed=0)
    flags = [env.step(env.get_state()[:2])[3] for _ in range(3)]
    assert flags == [False, False, True]


def test_same_seed_same_trajectory():
    actions = np.random.default_rng(1).uniform(50, 450, size=(40, 2))
    runs = []
    for _ in range(2):
        env = PushTEnv(obs_type="keypoints")
        env.reset(seed=7)
        runs.append(np.stack([env.step(a)[0]["keypoint"] for a in actions]))
    assert np.array_equal(runs[0], runs[1])


def test_reset_to_state_round_trip_and_legacy_setter():
    state = _state([100.0, 120.0], (300.0, 310.0, 1.0))
    env = PushTEnv()
    env.reset(options={"reset_to_state": state})
    assert np.allclose(env.get_state(), state, atol=1e-9)
    # DP's legacy setter places the origin, then turns the body about its centre of gravity.
    env.reset(options={"reset_to_state": state, "legacy": True})
    cog = np.array(BLOCK_COG)
    expected_origin = state[2:4] + cog - rotation(1.0) @ cog
    assert np.allclose(env.get_state()[2:4], expected_origin, atol=1e-9)
    assert not np.allclose(env.get_state()[2:4], state[2:4], atol=1.0)


def test_physics_step_after_reset_keeps_state_and_overlap_resolves_on_first_step():
    # The extra 10 ms step DP runs after setting a state moves nothing (the bodies have no velocity and
    # the new contact is only solved from the next step); the first control step pushes the block out.
    env = PushTEnv()
    state = _state([256.0, 295.0], (256.0, 300.0, 0.0))  # agent overlaps the bar's top edge by 10 px
    env.reset(options={"reset_to_state": state})
    assert np.array_equal(env.get_state(), state)
    env.step([256.0, 295.0])
    assert env.get_state()[3] == pytest.approx(304.6387, abs=1e-3)


def test_dp_test_seed_initial_states():
    for seed in (100000, 100049):
        rs = np.random.RandomState(seed)
        agent = [rs.randint(50, 450), rs.randint(50, 450)]
        block = np.array([rs.randint(100, 400), rs.randint(100, 400)], dtype=np.float64)
        angle = rs.randn() * 2 * np.pi - np.pi
        assert np.array_equal(legacy_initial_state(seed), [*agent, *block, angle])
        env = PushTEnv()
        obs, info = env.reset(seed=seed)
        cog = np.array(BLOCK_COG)
        assert np.allclose(info["state"][:2], agent)
        assert np.allclose(info["state"][2:4], block + cog - rotation(angle) @ cog, atol=1e-6)
        assert info["state"][4] == pytest.approx(angle % (2 * np.pi))
    assert np.array_equal(legacy_initial_state(100000)[:2], [235, 124])


@pytest.mark.parametrize(
    "obs_type,spec",
    [
        ("state", {"state": ((5,), np.float32)}),
        ("keypoints", {"keypoint": ((9, 2), np.float32), "agent_pos": ((2,), np.float32)}),
        ("image", {"image": ((96, 96, 3), np.uint8), "agent_pos": ((2,), np.float32)}),
    ],
)
def test_observation_shapes_and_dtypes(obs_type, spec):
    env = gymnasium.make("envs/PushT-v0", obs_type=obs_type)
    obs, info = env.reset(seed=3)
    obs2 = env.step(np.array([200.0, 200.0], dtype=np.float32))[0]
    for o in (obs, obs2):
        assert {k: (v.shape, v.dtype) for k, v in o.items()} == spec
        assert env.observation_space.contains(o)
    assert set(info) >= {"coverage", "is_success", "state", "n_contacts"}


def test_physics_quirks_frictionless_and_quasi_static():
    world = PushTWorld()
    assert all(s.friction == 0.0 for s in world.space.shapes)  # DP set friction on the bodies only
    world.set_state([170.0, 315.0, 256.0, 300.0, 0.0], legacy=False)
    for _ in range(3):
        world.step(260.0, 315.0)  # push the bar's left end to the right
    moved = world.block.position.x - 256.0
    assert moved > 1.0
    world.step(*world.agent.position)  # agent brakes to a stop: the block stops with no sliding
    x = world.block.position.x
    world.agent.velocity = (0.0, 0.0)
    for _ in range(SUBSTEPS):
        world.space.step(0.01)
    assert world.block.position.x == pytest.approx(x, abs=1e-9)


def test_n_contacts_counts_pushing():
    env = PushTEnv()
    env.reset(options={"reset_to_state": _state([170.0, 315.0], (256.0, 300.0, 0.0))})
    assert env.step([170.0, 315.0])[4]["n_contacts"] == 0
    assert env.step([230.0, 315.0])[4]["n_contacts"] > 0


def test_keypoint_table_matches_its_recipe():
    assert np.allclose(dp_style_keypoints(), BLOCK_KEYPOINTS, atol=0.051)


def test_render_is_headless_and_sized():
    env = PushTEnv(obs_type="image", video_size=128)
    obs, _ = env.reset(options={"reset_to_state": _state(FAR, (400, 100, 0.0))})
    assert tuple(obs["image"][48, 48]) == GOAL_COLOR  # goal centre region, nothing on top
    env.step([100.0, 100.0])
    frame = env.render()
    assert frame.shape == (128, 128, 3) and frame.dtype == np.uint8
    assert (frame == [255, 0, 0]).all(-1).any()  # the action marker is drawn in videos only
    assert not (env.step([100.0, 100.0])[0]["image"] == [255, 0, 0]).all(-1).any()


def test_sync_vector_env():
    vec = gymnasium.vector.SyncVectorEnv([lambda: PushTEnv(obs_type="keypoints") for _ in range(2)])
    obs, info = vec.reset(seed=[100000, 100001])
    assert obs["keypoint"].shape == (2, 9, 2)
    obs, reward, terminated, truncated, info = vec.step(np.full((2, 2), 256.0, dtype=np.float32))
    assert reward.shape == (2,) and info["coverage"].shape == (2,)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="obs_type"):
        PushTEnv(obs_type="pixels")
    env = PushTEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step([np.nan, 1.0])
    with pytest.raises(ValueError, match="reset_to_state"):
        env.reset(options={"reset_to_state": [1, 2, 3]})

import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from drifting_policy.policy import DriftingConfig, DriftingPolicy, build_policy
from drifting_policy.policy.drifting import NEIGHBOUR_ACTION_KEY
from drifting_policy.policy.normalizer import Normalizer

BIMODAL_META = {"obs": {"state": {"shape": (1,), "type": "low_dim"}}, "action": {"shape": (1,)}}


@pytest.mark.parametrize("backbone", ["unet", "mlp"])
@pytest.mark.parametrize("obs_type", ["low_dim", "rgb"])
def test_shapes_and_metrics(make_policy, metas, backbone, obs_type):
    policy, batch = make_policy("drifting", metas[obs_type], backbone=backbone)
    loss, metrics = policy.compute_loss(batch)
    loss.backward()
    assert loss.shape == () and torch.isfinite(loss)
    assert {"loss", "demo_mse", "feature_scale", "nearest_pos_dist", "gen_spread", "drift_rms/tau_0.02",
            "drift_rms/tau_0.05", "drift_rms/tau_0.2"} <= set(metrics)
    assert all(torch.as_tensor(v).dim() == 0 for v in metrics.values())
    assert all(p.grad is not None for p in policy.backbone.parameters())
    policy.eval()
    assert policy.predict_action(batch["obs"]).shape == (4, 8, 2)


def test_observation_encoded_once_and_broadcast_to_g_samples(make_policy, count_calls):
    policy, batch = make_policy("drifting", samples_per_obs=6)
    encoder_calls, backbone_calls = count_calls(policy.obs_encoder), count_calls(policy.backbone)
    policy.compute_loss(batch)
    assert encoder_calls == [4]  # the encoder sees B=4 observations once, not B * G rows
    assert backbone_calls == [4 * 6]


def test_inference_is_one_network_evaluation(make_policy, count_calls):
    policy, batch = make_policy("drifting")
    calls = count_calls(policy.backbone)
    policy.eval()
    policy.predict_action(batch["obs"], torch.Generator().manual_seed(0))
    assert calls == [4]


def test_candidates_execute_the_furthest_travelling_of_one_batched_draw(make_policy, count_calls):
    """candidates=N: one backbone call over B * N rows, and per observation the chosen chunk is the draw
    (of the same N draws, same generator) whose executed steps cover the longest path."""
    policy, batch = make_policy("drifting", candidates=5)
    policy.eval()
    calls = count_calls(policy.backbone)
    chosen = policy.predict_action(batch["obs"], torch.Generator().manual_seed(3))  # [B, T, A] raw
    assert calls == [4 * 5]
    draws = policy.generate(policy.encode_obs(batch["obs"]), 5, torch.Generator().manual_seed(3))
    draws = draws.reshape(4, 5, *chosen.shape[1:])  # [B, N, T, A], normalised
    first, horizon = policy.config.obs_horizon - 1, policy.config.action_horizon
    executed = draws[:, :, first:first + horizon]
    travel = (executed[:, :, 1:] - executed[:, :, :-1]).norm(dim=-1).sum(-1)  # [B, N]
    best = travel.argmax(dim=1)
    torch.testing.assert_close(chosen, policy.unnormalize_action(draws[torch.arange(4), best]))
    assert bool((best != 0).any())  # the rule chose, not the first draw everywhere


def test_one_candidate_is_the_plain_sampler(make_policy):
    policy, batch = make_policy("drifting")
    policy.eval()
    plain = policy.predict_action(batch["obs"], torch.Generator().manual_seed(4))  # candidates: default 1
    cond = policy.encode_obs(batch["obs"])
    direct = policy.unnormalize_action(policy.generate(cond, 1, torch.Generator().manual_seed(4)))
    torch.testing.assert_close(plain, direct, rtol=0, atol=0)


@pytest.mark.parametrize("backbone", ["unet", "mlp"])
def test_generated_samples_are_distinct_at_init(make_policy, backbone):
    policy, batch = make_policy("drifting", backbone=backbone)
    _, metrics = policy.compute_loss(batch, torch.Generator().manual_seed(0))
    # a zero-init output would give gen_spread == 0: no repulsion, a degenerate field at step 0
    assert metrics["gen_spread"] > 0.05 * metrics["feature_scale"]


def test_conditioning_noise_alone_makes_samples_differ(make_policy, monkeypatch):
    """noise_cond_dim > 0: with the chunk-shaped noise input zeroed, the G samples of one observation still
    differ (the noise vector reaches the output through the conditioning); without it they coincide.
    (UNet: the MLP's FiLM layers start at the identity, so there the vector acts only once trained.)"""
    spreads = {}
    for noise_cond_dim in (0, 8):
        policy, batch = make_policy("drifting", backbone="unet", noise_cond_dim=noise_cond_dim)
        draw = policy.sample_noise
        monkeypatch.setattr(policy, "sample_noise", lambda shape, generator, draw=draw: (
            draw(shape, generator) if len(shape) == 2 else torch.zeros(shape)))
        cond = policy.encode_obs(batch["obs"])
        with torch.no_grad():
            chunks = policy.generate(cond, 4, torch.Generator().manual_seed(0)).reshape(cond.shape[0], 4, -1)
        spreads[noise_cond_dim] = float((chunks - chunks.mean(1, keepdim=True)).abs().max())
    assert spreads[0] == 0.0 and spreads[8] > 1e-3


def test_noise_skip_makes_the_unet_start_with_distinct_samples(make_policy):
    """noise_skip adds the noise to the backbone's chunk: at initialisation the UNet's samples of one
    observation are far closer together than they are to the demonstration; the identity path evens that."""
    ratios = {}
    for noise_skip in (0.0, 0.5):
        torch.manual_seed(0)
        policy, batch = make_policy("drifting", backbone="unet", noise_skip=noise_skip)
        with torch.no_grad():
            _, metrics = policy.compute_loss(batch, torch.Generator().manual_seed(0))
        ratios[noise_skip] = float(metrics["gen_spread"] / metrics["nearest_pos_dist"])
    assert ratios[0.5] > 2 * ratios[0.0]
    with pytest.raises(ValueError, match="noise_skip"):
        DriftingConfig(noise_skip=-1.0)


def test_same_generator_same_actions_and_seed_matters(make_policy):
    policy, batch = make_policy("drifting")
    policy.eval()
    first = policy.predict_action(batch["obs"], torch.Generator().manual_seed(7))
    again = policy.predict_action(batch["obs"], torch.Generator().manual_seed(7))
    other = policy.predict_action(batch["obs"], torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


@pytest.mark.parametrize("obs_type", ["low_dim", "rgb"])
def test_state_dict_roundtrip_through_safetensors_gives_identical_actions(make_policy, metas, obs_type,
                                                                          tmp_path):
    policy, batch = make_policy("drifting", metas[obs_type])
    policy.eval()
    expected = policy.predict_action(batch["obs"], torch.Generator().manual_seed(3))
    save_file(policy.state_dict(), tmp_path / "policy.safetensors")
    rebuilt = build_policy(policy.name, dataclasses.asdict(policy.config), policy.shape_meta)
    rebuilt.load_state_dict(load_file(tmp_path / "policy.safetensors"))
    rebuilt.eval()
    assert torch.equal(rebuilt.predict_action(batch["obs"], torch.Generator().manual_seed(3)), expected)


def test_actions_are_in_raw_units_and_clipped_to_data_range(make_policy):
    policy, batch = make_policy("drifting")
    policy.eval()
    actions = policy.predict_action(batch["obs"], torch.Generator().manual_seed(0))
    low, high = batch["action"].amin(dim=(0, 1)), batch["action"].amax(dim=(0, 1))
    assert bool(((actions >= low - 1e-3) & (actions <= high + 1e-3)).all())
    assert actions.abs().mean() > 10  # raw pixel-like units, not [-1, 1]


def test_demo_distance_decreases_on_tiny_dataset(make_policy):
    policy, batch = make_policy("drifting", backbone="mlp", batch_size=8)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    first = None
    for _ in range(80):
        loss, metrics = policy.compute_loss(batch, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = float(metrics["demo_mse"]) if first is None else first
    # the drift loss itself stays ~constant by design; the distance to the demonstrations must fall
    assert float(metrics["demo_mse"]) < 0.5 * first


def test_bimodal_actions_for_one_observation_keep_both_modes():
    torch.manual_seed(0)
    config = DriftingConfig(obs_horizon=1, action_horizon=1, prediction_horizon=1, backbone="mlp",
                            mlp_width=64, mlp_depth=2, samples_per_obs=8)
    policy = DriftingPolicy(config, BIMODAL_META)
    # demonstrations are -1 or +1; the normaliser spans [-2, 2] so clipping cannot create the modes
    policy.set_normalizer(Normalizer().fit({"state": np.zeros((2, 1)), "action": np.array([[-2.0], [2.0]])}))
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(120):
        sign = torch.randint(0, 2, (32, 1, 1), generator=generator) * 2.0 - 1.0
        loss, _ = policy.compute_loss({"obs": {"state": torch.zeros(32, 1, 1)}, "action": sign}, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.eval()
    obs = {"state": torch.zeros(512, 1, 1)}
    actions = policy.predict_action(obs, torch.Generator().manual_seed(2)).flatten()
    assert ((actions - 1).abs() < 0.3).float().mean() > 0.3
    assert ((actions + 1).abs() < 0.3).float().mean() > 0.3
    assert (actions.abs() < 0.5).float().mean() < 0.1  # not the mean of the modes


@pytest.mark.parametrize("options", [{"group_mode": "mixed"}, {"extra_positives_k": 2}])
def test_ablation_modes_let_other_observations_chunks_attract(make_policy, options):
    """Mixed groups and extra positives offer each sample other observations' chunks, so its nearest
    positive can only get closer than its own demonstration (same weights, same noise)."""
    policy, batch = make_policy("drifting", seed=3, batch_size=6)
    ablation, _ = make_policy("drifting", seed=3, batch_size=6, **options)
    ablation.load_state_dict(policy.state_dict())
    others = torch.stack([batch["action"].roll(shift, 0) for shift in (1, 2)], dim=1)  # [B, 2, T, A]
    _, own = policy.compute_loss(batch, torch.Generator().manual_seed(0))
    with_others = {**batch, NEIGHBOUR_ACTION_KEY: others}
    _, ablated = ablation.compute_loss(with_others, torch.Generator().manual_seed(0))
    assert ablated["nearest_pos_dist"] < own["nearest_pos_dist"]


def test_extra_positives_are_the_datasets_neighbour_chunks_normalised(make_policy):
    policy, batch = make_policy("drifting", extra_positives_k=1)
    action = batch["action"]  # [B, T, A] raw
    neighbours = action.flip(0).unsqueeze(1)  # [B, 1, T, A]: observation i's neighbour is B - 1 - i
    own = policy.normalizer.normalize("action", action).reshape(len(action), -1)
    positives = policy.positives(own, {**batch, NEIGHBOUR_ACTION_KEY: neighbours})  # [B, 2, D]
    torch.testing.assert_close(positives[:, 0], own)
    torch.testing.assert_close(positives[:, 1], own.flip(0))
    with pytest.raises(ValueError, match="NeighbourPositives"):
        policy.positives(own, batch)
    with pytest.raises(ValueError, match=r"expected \[4, 1, 8, 2\]"):
        policy.positives(own, {**batch, NEIGHBOUR_ACTION_KEY: neighbours[:, :, :3]})


@pytest.mark.parametrize(("options", "field"), [({"samples_per_obs": 1}, "samples_per_obs"),
                                                ({"group_mode": "pairs"}, "group_mode"),
                                                ({"temperatures": ()}, "temperatures"),
                                                ({"candidates": 0}, "candidates"),
                                                ({"backbone": "transformer"}, "backbone"),
                                                ({"action_horizon": 16}, "action_horizon"),
                                                ({"prediction_horizon": 10}, "prediction_horizon")])
def test_config_errors_name_the_field(options, field):
    with pytest.raises(ValueError, match=f"{field}="):
        DriftingConfig(**options)


def test_wrong_observation_key_or_shape_is_named(make_policy):
    policy, batch = make_policy("drifting")
    with pytest.raises(ValueError, match="'agent_pos' missing"):
        policy.compute_loss({"obs": {"keypoint": batch["obs"]["keypoint"]}, "action": batch["action"]})
    bad = {**batch["obs"], "keypoint": batch["obs"]["keypoint"][:, :1]}
    with pytest.raises(ValueError, match=r"'keypoint' has shape \[4, 1, 3, 2\]; expected \[4, 2, 3, 2\]"):
        policy.predict_action(bad)
    with pytest.raises(ValueError, match=r"batch\['action'\] has shape \[4, 7, 2\]"):
        policy.compute_loss({"obs": batch["obs"], "action": batch["action"][:, :7]})

import dataclasses

import numpy as np
import pytest
import torch

from drifting_policy.policy import BasePolicy, RegressionConfig, RegressionPolicy, build_policy
from drifting_policy.policy.normalizer import Normalizer


@pytest.mark.parametrize("backbone", ["unet", "mlp"])
@pytest.mark.parametrize("obs_type", ["low_dim", "rgb"])
def test_shapes(make_policy, metas, backbone, obs_type):
    policy, batch = make_policy("regression", metas[obs_type], backbone=backbone)
    loss, metrics = policy.compute_loss(batch)
    loss.backward()
    assert loss.shape == () and set(metrics) == {"loss"}
    policy.eval()
    assert policy.predict_action(batch["obs"]).shape == (4, 8, 2)


def test_loss_is_the_mse_to_the_minmax_normalised_demo_chunk(make_policy):
    policy, batch = make_policy("regression")
    loss, _ = policy.compute_loss(batch)
    action = batch["action"]  # [B, T, A] raw; the normaliser was fitted on this batch
    low, high = action.amin(dim=(0, 1)), action.amax(dim=(0, 1))
    target = 2 * (action - low) / (high - low) - 1
    expected = (policy.regress(policy.encode_obs(batch["obs"])) - target).square().mean()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert float(loss.detach()) > 0.01  # not a trivial zero


def test_deterministic_one_call_and_generator_ignored(make_policy, count_calls):
    policy, batch = make_policy("regression")
    calls = count_calls(policy.backbone)
    policy.eval()
    first = policy.predict_action(batch["obs"], torch.Generator().manual_seed(0))
    assert torch.equal(first, policy.predict_action(batch["obs"], torch.Generator().manual_seed(1)))
    assert torch.equal(first, policy.predict_action(batch["obs"]))
    assert calls == [4, 4, 4]


def test_zero_init_predicts_centre_of_action_range(make_policy):
    policy, batch = make_policy("regression")
    policy.eval()
    centre = (batch["action"].amin(dim=(0, 1)) + batch["action"].amax(dim=(0, 1))) / 2
    assert torch.allclose(policy.predict_action(batch["obs"]), centre.expand(4, 8, 2), atol=1e-3)


def test_loss_decreases_and_state_dict_roundtrip(make_policy):
    policy, batch = make_policy("regression", backbone="mlp", batch_size=8)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss, _ = policy.compute_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = float(loss.detach()) if first is None else first
    assert float(loss.detach()) < 0.3 * first
    policy.eval()
    rebuilt = build_policy("regression", dataclasses.asdict(policy.config), policy.shape_meta)
    rebuilt.load_state_dict(policy.state_dict())
    rebuilt.eval()
    assert torch.equal(rebuilt.predict_action(batch["obs"]), policy.predict_action(batch["obs"]))


def test_regression_averages_two_modes():
    # the property the generative heads are compared against: MSE regression predicts the mean of the modes
    torch.manual_seed(0)
    config = RegressionConfig(obs_horizon=1, action_horizon=1, prediction_horizon=1, backbone="mlp",
                              mlp_width=64, mlp_depth=2)
    policy = RegressionPolicy(config, {"obs": {"state": {"shape": (1,), "type": "low_dim"}},
                                       "action": {"shape": (1,)}})
    policy.set_normalizer(Normalizer().fit({"state": np.zeros((2, 1)), "action": np.array([[-2.0], [2.0]])}))
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(100):
        sign = torch.randint(0, 2, (32, 1, 1), generator=generator) * 2.0 - 1.0
        loss, _ = policy.compute_loss({"obs": {"state": torch.zeros(32, 1, 1)}, "action": sign})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    policy.eval()
    assert policy.predict_action({"state": torch.zeros(1, 1, 1)}).abs().item() < 0.2


def test_build_policy_rejects_unknown_name_and_fields(metas):
    with pytest.raises(ValueError, match="policy name='bc'"):
        build_policy("bc", {}, metas["low_dim"])
    with pytest.raises(ValueError, match=r"unknown RegressionConfig fields \['samples_per_obs'\]"):
        build_policy("regression", {"samples_per_obs": 8}, metas["low_dim"])


def test_policy_subclass_must_declare_its_registry_attributes():
    with pytest.raises(TypeError, match="must define class attribute 'name'"):
        class Nameless(BasePolicy):  # noqa: F841 - defining it is the test
            def compute_loss(self, batch, generator=None):
                raise NotImplementedError

            def predict_action(self, obs, generator=None):
                raise NotImplementedError

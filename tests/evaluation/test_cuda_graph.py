"""GraphedPolicy: graph replay gives the eager policy's actions for the same noise, fresh noise per call, new
obs values honoured. Tests marked ``gpu`` need CUDA and are skipped without it."""

import pytest
import torch

from drifting_policy.evaluation.bench import fitted_normalizer, random_obs
from drifting_policy.evaluation.cuda_graph import GraphedPolicy
from drifting_policy.policy import build_policy

LOW_DIM = {"obs": {"agent_pos": {"shape": (2,), "type": "low_dim"},
                   "keypoint": {"shape": (9, 2), "type": "low_dim"}},
           "action": {"shape": (2,)}}
RGB = {"obs": {"image": {"shape": (48, 48, 3), "type": "rgb"},
               "agent_pos": {"shape": (2,), "type": "low_dim"}},
       "action": {"shape": (2,)}}
SMALL = {"obs_horizon": 2, "action_horizon": 4, "prediction_horizon": 8, "down_dims": (16, 32),
         "n_groups": 4, "step_embed_dim": 16, "mlp_width": 32, "mlp_depth": 2, "image_feature_dim": 8,
         "crop_shape": (44, 44)}
CASES = {"drifting-mlp": ("drifting", LOW_DIM, {"backbone": "mlp"}),
         "drifting-unet": ("drifting", LOW_DIM, {"backbone": "unet"}),
         "drifting-unet-images": ("drifting", RGB, {"backbone": "unet"}),
         "regression-unet": ("regression", LOW_DIM, {"backbone": "unet"})}
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def make_policy(name, shape_meta, device, **options):
    torch.manual_seed(0)
    policy = build_policy(name, {**SMALL, **options}, shape_meta)
    policy.set_normalizer(fitted_normalizer(shape_meta))
    return policy.to(device).eval()


def test_refuses_a_cpu_policy():
    policy = make_policy("drifting", LOW_DIM, "cpu")
    with pytest.raises(ValueError, match="CUDA device"):
        GraphedPolicy(policy, random_obs(LOW_DIM, 2, "cpu"))


@pytest.mark.gpu
@cuda_only
@pytest.mark.parametrize("case", list(CASES))
def test_replay_equals_eager_for_the_same_noise(case):
    name, shape_meta, options = CASES[case]
    policy = make_policy(name, shape_meta, "cuda", **options)
    obs = random_obs(shape_meta, 2, "cuda")
    graphed = GraphedPolicy(policy, obs)
    torch.cuda.manual_seed(123)
    eager = policy.predict_action(obs)
    torch.cuda.manual_seed(123)
    replay = graphed.predict_action(obs)
    assert replay.shape == (1, 8, 2)
    torch.testing.assert_close(replay, eager, rtol=1e-5, atol=1e-4)


@pytest.mark.gpu
@cuda_only
def test_registered_generator_replays_its_own_stream():
    policy = make_policy("drifting", LOW_DIM, "cuda", backbone="unet")
    obs = random_obs(LOW_DIM, 2, "cuda")
    generator = torch.Generator(device="cuda")
    graphed = GraphedPolicy(policy, obs, generator=generator)
    generator.manual_seed(7)
    replay = graphed.predict_action(obs)
    generator.manual_seed(7)
    torch.testing.assert_close(replay, policy.predict_action(obs, generator), rtol=1e-5, atol=1e-4)


@pytest.mark.gpu
@cuda_only
def test_fresh_noise_per_call_and_new_obs_values():
    policy = make_policy("drifting", RGB, "cuda", backbone="unet")
    obs = random_obs(RGB, 2, "cuda")
    graphed = GraphedPolicy(policy, obs)
    first, second = graphed.predict_action(obs), graphed.predict_action(obs)
    assert not torch.equal(first, second)  # the noise is drawn inside the graph, anew on each replay
    other = {key: value.flip(1) if value.dtype == torch.uint8 else value * 0.5  # other values, same shapes
             for key, value in obs.items()}
    torch.cuda.manual_seed(5)
    replay = graphed.predict_action({key: value.cpu() for key, value in other.items()})  # host obs are copied
    torch.cuda.manual_seed(5)
    torch.testing.assert_close(replay, policy.predict_action(other), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="captured for"):
        graphed.predict_action({key: value.repeat(2, *[1] * (value.dim() - 1)) for key, value in obs.items()})

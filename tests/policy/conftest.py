"""Tiny shape_metas, raw batches and fitted normalisers shared by the policy tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from drifting_policy.policy import build_policy
from drifting_policy.policy.normalizer import Normalizer

LOW_DIM_META = {"obs": {"keypoint": {"shape": (3, 2), "type": "low_dim"},
                        "agent_pos": {"shape": (2,), "type": "low_dim"}},
                "action": {"shape": (2,)}}
RGB_META = {"obs": {"image": {"shape": (40, 40, 3), "type": "rgb"},
                    "agent_pos": {"shape": (2,), "type": "low_dim"}},
            "action": {"shape": (2,)}}
# Tiny sizes: a test builds, trains and samples in well under a second.
TINY = {"obs_horizon": 2, "action_horizon": 4, "prediction_horizon": 8, "down_dims": (16, 32),
        "n_groups": 4, "step_embed_dim": 16, "mlp_width": 32, "mlp_depth": 2, "image_feature_dim": 8,
        "num_keypoints": 4, "crop_shape": (36, 36)}


def raw_batch(shape_meta: dict, batch_size: int, seed: int, prediction_horizon: int = 8,
              obs_horizon: int = 2) -> dict:
    """A raw batch in pixel-like units: {'obs': {key: [B, To, ...]}, 'action': [B, T, A]}."""
    generator = torch.Generator().manual_seed(seed)
    obs = {}
    for key, meta in shape_meta["obs"].items():
        shape = (batch_size, obs_horizon, *meta["shape"])
        if meta["type"] == "rgb":
            obs[key] = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
        else:
            obs[key] = 100.0 + 400.0 * torch.rand(shape, generator=generator)
    action_dim = shape_meta["action"]["shape"][0]
    action = 50.0 + 300.0 * torch.rand(batch_size, prediction_horizon, action_dim, generator=generator)
    return {"obs": obs, "action": action}


def fitted_normalizer(shape_meta: dict, batch: dict) -> Normalizer:
    data = {key: value.flatten(0, 1).numpy() for key, value in batch["obs"].items()}
    data["action"] = batch["action"].flatten(0, 1).numpy()
    return Normalizer().fit({k: v for k, v in data.items() if v.dtype != np.uint8},
                            image_keys=[k for k, m in shape_meta["obs"].items() if m["type"] == "rgb"])


@pytest.fixture
def make_policy():
    """make_policy(name, shape_meta, **options) -> (policy with a fitted normaliser, a raw batch of 4)."""

    def make(name: str, shape_meta: dict | None = None, seed: int = 0, batch_size: int = 4, **options):
        shape_meta = LOW_DIM_META if shape_meta is None else shape_meta
        torch.manual_seed(seed)
        policy = build_policy(name, {**TINY, **options}, shape_meta)
        batch = raw_batch(shape_meta, batch_size, seed, policy.config.prediction_horizon,
                          policy.config.obs_horizon)
        policy.set_normalizer(fitted_normalizer(shape_meta, batch))
        return policy, batch

    return make


def _count_calls(module: torch.nn.Module) -> list[int]:
    calls: list[int] = []

    def record(_module, args, _output) -> None:
        first = args[0] if torch.is_tensor(args[0]) else next(iter(args[0].values()))  # tensor or obs dict
        calls.append(first.shape[0])

    module.register_forward_hook(record)
    return calls


@pytest.fixture
def count_calls():
    """count_calls(module) -> a list recording the leading batch size of every forward call."""
    return _count_calls


@pytest.fixture
def metas() -> dict:
    return {"low_dim": LOW_DIM_META, "rgb": RGB_META}


@pytest.fixture
def make_batch():
    """make_batch(shape_meta, batch_size, seed, prediction_horizon=8, obs_horizon=2) -> raw batch."""
    return raw_batch

"""Policies over one interface: ``compute_loss(batch)``, ``predict_action(obs, generator)``, ``reset()``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from drifting_policy.policy.base import BasePolicy, PolicyConfig
from drifting_policy.policy.diffusion import DiffusionConfig, DiffusionPolicy
from drifting_policy.policy.drifting import DriftingConfig, DriftingPolicy
from drifting_policy.policy.regression import RegressionConfig, RegressionPolicy

POLICIES: dict[str, type[BasePolicy]] = {
    DriftingPolicy.name: DriftingPolicy,
    DiffusionPolicy.name: DiffusionPolicy,
    RegressionPolicy.name: RegressionPolicy,
}


def build_policy(name: str, options: Mapping[str, Any] | None, shape_meta: Mapping) -> BasePolicy:
    """Build a policy from its registry name, its config fields and the task's shape_meta.

    ``dataclasses.asdict(policy.config)``, ``policy.name`` and ``policy.shape_meta`` rebuild the same policy.
    """
    if name not in POLICIES:
        raise ValueError(f"policy name={name!r}: expected one of {sorted(POLICIES)}")
    policy_class = POLICIES[name]
    config_class = policy_class.config_class
    fields = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(options or {}) - fields)
    if unknown:
        raise ValueError(f"unknown {config_class.__name__} fields {unknown}; known fields: {sorted(fields)}")
    return policy_class(config_class(**dict(options or {})), shape_meta)


__all__ = [
    "POLICIES",
    "BasePolicy",
    "DiffusionConfig",
    "DiffusionPolicy",
    "DriftingConfig",
    "DriftingPolicy",
    "PolicyConfig",
    "RegressionConfig",
    "RegressionPolicy",
    "build_policy",
]

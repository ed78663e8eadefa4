"""Training objectives of the one image trainer (image_gen.training.trainer), picked by ``config.objective``:

    drifting   one-step DiT generator: feature-space drift loss with learned CFG (drifting.py, features.py)
    flow       rectified-flow DiT baseline, the many-NFE comparison point (flow.py)
    mae        masked-autoencoder pre-training of the drift loss's feature encoder (mae.py)
    vae        the small KL autoencoder of latent-space runs (vae.py)
    evaluator  the classifier whose features score samples (evaluator.py)

drifting and flow share the DiT generator plumbing (generator.py); the interface is base.py. Modules load on
first use, so a flow run never imports diffusers unless it needs a VAE.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType

# objective -> (module, config dataclass, Objective subclass); read-only
_REGISTRY = MappingProxyType({
    "drifting": ("image_gen.objectives.drifting", "DriftingTrainConfig", "DriftingObjective"),
    "flow": ("image_gen.objectives.flow", "FlowTrainConfig", "FlowObjective"),
    "mae": ("image_gen.objectives.mae", "MAETrainConfig", "MAEObjective"),
    "vae": ("image_gen.objectives.vae", "VAETrainConfig", "VAEObjective"),
    "evaluator": ("image_gen.objectives.evaluator", "EvaluatorTrainConfig", "EvaluatorObjective"),
})
OBJECTIVES = tuple(_REGISTRY)


def _lookup(name: str, index: int):
    if name not in _REGISTRY:
        raise ValueError(f"objective={name!r}; expected one of {list(OBJECTIVES)} (set objective=<name>)")
    module_name, *class_names = _REGISTRY[name]
    return getattr(importlib.import_module(module_name), class_names[index])


def config_class(name: str) -> type:
    """The config dataclass of objective ``name``."""
    return _lookup(name, 0)


def objective_class(name: str) -> type:
    """The :class:`~image_gen.objectives.base.Objective` subclass of objective ``name``."""
    return _lookup(name, 1)

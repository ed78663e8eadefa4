"""A policy's ``predict_action`` captured in one CUDA graph: batch-1 inference at the hardware's speed.

At batch 1 a chunk is a few hundred small kernels (obs encoder, backbone, normaliser); launching them from
Python costs more than running them. A CUDA graph records the launches once and replays them with one call.
Inputs and outputs live in static buffers: ``predict_action(obs)`` copies obs into them, replays, and returns
a copy of the output. Shapes are fixed at capture (the example obs); new values are fine, new shapes are not.

Noise stays fresh per call: the policy draws it inside the graph from a CUDA generator, which CUDA graphs
advance on every replay (graph-safe RNG): the default CUDA generator (seeded by ``torch.manual_seed``), or
the ``generator`` given at capture, registered with the graph. A generator passed per call is not used.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


class GraphedPolicy:
    """``policy.predict_action`` captured for the obs shapes of ``example_obs`` ({key: [B, To, ...]}).

    Args:
        policy: any policy with ``predict_action(obs, generator) -> [B, T, A]``, on a CUDA device, in eval
            mode (dropout or batch statistics would be frozen into the graph otherwise).
        example_obs: raw observations with the shapes (and dtypes) of every later call.
        generator: a CUDA generator to draw the noise from; None uses the default CUDA generator.
        warmup: eager calls on a side stream before capture (lazy initialisation, cuDNN autotuning).
    """

    def __init__(self, policy: nn.Module, example_obs: Mapping[str, Tensor],
                 generator: torch.Generator | None = None, warmup: int = 3):
        device = next(policy.parameters()).device
        if device.type != "cuda":
            raise ValueError(f"GraphedPolicy needs a policy on a CUDA device; got {device}: move it with "
                             ".to('cuda'), or call predict_action directly")
        if policy.training:
            raise ValueError("GraphedPolicy captures inference: call policy.eval() first")
        if generator is not None and generator.device.type != "cuda":
            raise ValueError(f"generator is on {generator.device}; CUDA graphs draw noise from a CUDA "
                             "generator (torch.Generator(device='cuda')) or None (the default one)")
        self.policy, self.generator = policy, generator
        self.static_obs = {key: torch.as_tensor(value).to(device).clone()
                           for key, value in example_obs.items()}  # {key: [B, To, ...]}
        self.graph = torch.cuda.CUDAGraph()
        if generator is not None:
            self.graph.register_generator_state(generator)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(warmup):
                policy.predict_action(self.static_obs, generator)
        torch.cuda.current_stream(device).wait_stream(side)
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.static_action = policy.predict_action(self.static_obs, generator)  # [B, T, A]

    def predict_action(self, obs: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """Raw obs {key: [B, To, ...]} (the captured shapes) -> raw action chunks [B, T, A], a fresh tensor.
        ``generator`` is accepted for the policy interface and ignored (see the module docstring)."""
        for key, buffer in self.static_obs.items():
            if key not in obs:
                raise ValueError(f"obs lacks key '{key}' captured in the graph; got {sorted(obs)}")
            value = torch.as_tensor(obs[key])
            if tuple(value.shape) != tuple(buffer.shape):
                raise ValueError(f"obs['{key}'] has shape {list(value.shape)} but the graph was captured for "
                                 f"{list(buffer.shape)}; capture another GraphedPolicy for this shape")
            buffer.copy_(value, non_blocking=True)
        self.graph.replay()
        return self.static_action.clone()

    def reset(self) -> None:
        self.policy.reset()

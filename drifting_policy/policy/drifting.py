"""Drifting Policy: the backbone as a one-step generator of action chunks, trained with the drift loss.

Per training step, each observation is one kernel problem (a group): its G generated chunks are the
samples (and negatives, self-masked), its demonstration chunk is the positive, optionally joined by the
chunks that other demonstrations took in the k nearest states of the dataset (extra_positives_k). The
observation is encoded once; its conditioning is broadcast to its G noise rows inside the backbone.
Inference is one network evaluation per chunk.
Shape legend: B observations, G samples per observation, P positives, D = T * A (flattened chunk).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from drifting_policy.drift import drift_loss_with_metrics
from drifting_policy.policy.base import BasePolicy, PolicyConfig, config_error

GROUP_MODES = ("per_observation", "mixed")
NEIGHBOUR_ACTION_KEY = "neighbour_action"  # batch key of the extra positives' raw chunks [B, k, T, A]


@dataclasses.dataclass
class DriftingConfig(PolicyConfig):
    """Drifting head. ``group_mode='mixed'`` (one kernel problem over the whole batch) is the known failure,
    kept for the ablation only."""

    samples_per_obs: int = 8  # G: generated chunks per observation
    # extra positives: the chunks of the k nearest windows of other demonstrations within radius (standardised
    # observation units), found over the whole dataset (drifting_policy/data/neighbours.py)
    extra_positives_k: int = 0
    extra_positives_radius: float = 1.0
    group_mode: str = "per_observation"  # "per_observation" | "mixed"
    temperatures: tuple[float, ...] = (0.02, 0.05, 0.2)
    normalize: bool = True  # the official feature-scale and drift normalisation
    clip_sample: bool = True  # clip generated chunks to [-1, 1] (the data range) before unnormalising
    # > 0: each generated row also gets this many standard-normal values appended to its conditioning
    # (FiLM), so the noise reaches every layer globally, not only through the chunk-shaped input (a UNet's
    # convolutions and skip connections see that input locally in time)
    noise_cond_dim: int = 0
    # > 0: the generator is residual on its noise, chunk = backbone(noise, obs) + noise_skip * noise, so a
    # freshly initialised network's G samples of one observation differ as much as their noise does (a UNet
    # alone starts with them nearly identical: benchmarks/drifting_init_spread.py)
    noise_skip: float = 0.0
    # Inference only: > 1 draws this many chunks per observation in one batched network call and executes the
    # one whose executed steps travel furthest (path length of the executed actions, normalised units).
    # For position-target actions (Push-T): a draw that barely moves keeps a stalled agent stalled, and
    # stalls are where the policy loses its score (docs/experiments/pusht.md, round 7). Set at evaluation
    # with drifting-eval candidates=N; 1 is the plain sampler (docs/design.md, "Best of N draws").
    candidates: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        self.temperatures = tuple(float(t) for t in self.temperatures)
        if self.group_mode not in GROUP_MODES:
            raise config_error("group_mode", f"one of {GROUP_MODES}", self.group_mode,
                               "use 'per_observation'")
        if self.samples_per_obs < 1 or (self.group_mode == "per_observation" and self.samples_per_obs < 2):
            raise config_error("samples_per_obs", ">= 2 with per-observation groups (G=1 has no negative "
                               "after the self-mask, so the field is degenerate)", self.samples_per_obs,
                               "use 4-8; G=1 only runs with group_mode='mixed'")
        if self.noise_cond_dim < 0:
            raise config_error("noise_cond_dim", ">= 0", self.noise_cond_dim,
                               "use 0 (noise input only) or e.g. 32")
        if self.noise_skip < 0:
            raise config_error("noise_skip", ">= 0", self.noise_skip, "use 0 (off) or 1 (identity path)")
        if self.candidates < 1:
            raise config_error("candidates", ">= 1", self.candidates, "use 1 (plain sampling) or e.g. 8")
        if self.extra_positives_k < 0:
            raise config_error("extra_positives_k", ">= 0", self.extra_positives_k, "use 0 (demo chunk only)")
        if not self.extra_positives_radius > 0:
            raise config_error("extra_positives_radius", "> 0", self.extra_positives_radius, "e.g. 1.0")
        if not self.temperatures or min(self.temperatures) <= 0:
            raise config_error("temperatures", "a non-empty tuple of positive floats", self.temperatures,
                               "e.g. (0.02, 0.05, 0.2) or (0.2,)")


class DriftingPolicy(BasePolicy):
    """One-step generator: chunk = backbone(noise, obs); no timestep input."""

    name = "drifting"
    config_class = DriftingConfig
    uses_timestep = False
    zero_init_output = False  # a zeroed output would make all G samples identical: no field at step 0

    def positives(self, action: Tensor, batch: Mapping[str, Any]) -> Tensor:
        """Normalised demonstration chunks [B, D] (+ the neighbours' chunks the dataset adds when
        extra_positives_k > 0, batch[NEIGHBOUR_ACTION_KEY] raw [B, k, T, A]) -> positives [B, 1 + k, D]."""
        k = self.config.extra_positives_k
        if k == 0:
            return action.unsqueeze(1)  # [B, 1, D]
        if NEIGHBOUR_ACTION_KEY not in batch:
            raise ValueError(f"extra_positives_k={k} but the batch has no '{NEIGHBOUR_ACTION_KEY}'; wrap the "
                             "dataset in drifting_policy.data.neighbours.NeighbourPositives (drifting-train "
                             "does) or set policy.extra_positives_k=0")
        neighbours = torch.as_tensor(batch[NEIGHBOUR_ACTION_KEY]).to(self.device)  # [B, k, T, A]
        expected = (action.shape[0], k, *self.chunk_shape)
        if tuple(neighbours.shape) != expected:
            raise ValueError(f"batch['{NEIGHBOUR_ACTION_KEY}'] is {list(neighbours.shape)}; expected "
                             f"{list(expected)} [B, extra_positives_k, prediction_horizon, action_dim]")
        neighbours = self.normalizer.normalize("action", neighbours).reshape(action.shape[0], k, -1)
        return torch.cat([action.unsqueeze(1), neighbours], dim=1)  # [B, 1 + k, D]

    def extra_cond_dim(self) -> int:
        return self.config.noise_cond_dim

    def generate(self, cond: Tensor, num_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """Conditioning [B, E] -> normalised chunks [B * num_samples, T, A] (rows of one obs adjacent)."""
        rows = cond.shape[0] * num_samples
        noise = self.sample_noise((rows, *self.chunk_shape), generator)  # [B * G, T, A]
        if self.config.noise_cond_dim:  # per-row conditioning [obs features | noise vector]: [B * G, E + Z]
            noise_vector = self.sample_noise((rows, self.config.noise_cond_dim), generator)
            cond = torch.cat([cond.repeat_interleave(num_samples, dim=0), noise_vector], dim=-1)
        chunk = self.backbone(noise, None, cond)  # [B * G, T, A]
        return chunk + self.config.noise_skip * noise if self.config.noise_skip else chunk

    def compute_loss(self, batch: Mapping[str, Any], generator: torch.Generator | None = None
                     ) -> tuple[Tensor, dict[str, Tensor]]:
        config = self.config
        cond = self.encode_obs(batch["obs"], generator)  # [B, E], once per observation
        num_obs, num_gen = cond.shape[0], config.samples_per_obs
        action = self.normalized_action(batch, num_obs).reshape(num_obs, -1)  # [B, D]
        gen = self.generate(cond, num_gen, generator).reshape(num_obs, num_gen, -1)  # [B, G, D]
        pos = self.positives(action, batch)  # [B, P, D]
        if config.group_mode == "mixed":  # the known failure: all observations in one kernel problem
            gen, pos = gen.reshape(1, -1, gen.shape[-1]), pos.reshape(1, -1, pos.shape[-1])
        loss, drift_metrics = drift_loss_with_metrics(gen, pos, temperatures=config.temperatures,
                                                      normalize=config.normalize, check_finite=False)
        with torch.no_grad():  # the drift loss stays ~constant by design: watch the distance to the demo
            demo_mse = (gen.reshape(num_obs, num_gen, -1) - action.unsqueeze(1)).square().mean()
        return loss, {"loss": loss.detach(), "demo_mse": demo_mse, **drift_metrics}

    def set_candidates(self, candidates: int) -> None:
        """Draws per replan at inference (config.candidates), validated as the config validates it."""
        dataclasses.replace(self.config, candidates=candidates)  # raises config_error on a bad value
        self.config.candidates = candidates

    def draw_chunks(self, obs: Mapping[str, Tensor], num: int, generator: torch.Generator | None = None
                    ) -> Tensor:
        """Observations -> [B, num, T, A] normalised chunks: num draws per observation in one batched call."""
        cond = self.encode_obs(obs)  # [B, E]
        chunks = self.generate(cond, num, generator)  # [B * num, T, A], rows of one observation adjacent
        return chunks.reshape(cond.shape[0], num, *chunks.shape[1:])

    @torch.no_grad()
    def predict_action(self, obs: Mapping[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        chunks = self.draw_chunks(obs, self.config.candidates, generator)  # [B, N, T, A], one evaluation
        chosen = chunks[:, 0] if chunks.shape[1] == 1 else self.furthest_travelling(chunks)
        return self.unnormalize_action(chosen)  # [B, T, A]

    def furthest_travelling(self, chunks: Tensor) -> Tensor:
        """[B, N, T, A] candidate chunks -> [B, T, A]: per observation, the candidate whose executed steps
        (the action_horizon steps from the current one) cover the longest path."""
        first = self.config.obs_horizon - 1
        executed = chunks[:, :, first:first + self.config.action_horizon]  # [B, N, h, A]
        travel = (executed[:, :, 1:] - executed[:, :, :-1]).norm(dim=-1).sum(dim=-1)  # [B, N]
        return chunks[torch.arange(chunks.shape[0], device=chunks.device), travel.argmax(dim=1)]

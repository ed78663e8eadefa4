"""Extra positives for one-step generators: the chunks other demonstrations took in nearby states.

A scripted (or human) demonstration gives one action chunk per observation, so a drifting field built from
that chunk alone has a single positive per kernel problem: it pulls every generated sample towards one point
and the policy tends towards regression. The expert's *conditional* distribution p(chunk | state) is visible
only across demonstrations: other episodes that passed through a similar state and acted differently. This
wrapper finds, for every training window, its k nearest windows of OTHER episodes in observation space (over
the whole train split, not the batch: a random batch of 64 out of ~20k windows holds no near neighbours) and
returns their chunks as extra positives. A neighbour farther than ``radius`` is replaced by the window's own
chunk, so states that no other demonstration visited keep their single demonstrated action.

Distances are Euclidean over the window's low-dim observations (all ``obs_horizon`` steps, flattened), each
dimension standardised over the train split; ``radius`` is in those units (sqrt(2F) is the typical distance
between two random windows with F observation values).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree


class NeighbourPositives(torch.utils.data.Dataset):
    """Wraps a window dataset (items {"obs": {...}, "action": [T, A]}, a ``sampler`` with
    ``window_episodes``) and adds the neighbours' chunks [k, T, A] to each item under ``key``."""

    def __init__(self, dataset, k: int, radius: float, key: str = "neighbour_action"):
        if k < 1:
            raise ValueError(f"NeighbourPositives: k={k}; expected >= 1 (k=0 means: do not wrap)")
        if not radius > 0:
            raise ValueError(f"NeighbourPositives: radius={radius}; expected > 0 (standardised obs units)")
        self.dataset, self.k, self.radius, self.key = dataset, k, radius, key
        # every window's chunk kept too, so an item costs one index instead of k more dataset reads
        features, episodes, self.chunks = window_features(dataset)  # [N, F], [N], [N, T, A]
        self.neighbours, self.found = nearest_other_episode(features, episodes, k, radius)  # [N, k], [N]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.dataset[index], self.key: self.chunks[self.neighbours[index]]}  # [k, T, A]

    def __getattr__(self, name: str) -> Any:  # shape_meta, normalizer_data, ... of the wrapped dataset
        if name == "dataset":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def get_validation_dataset(self) -> NeighbourPositives:
        return NeighbourPositives(self.dataset.get_validation_dataset(), self.k, self.radius, self.key)

    def summary(self) -> dict[str, float]:
        """How many windows found real neighbours (the rest use their own chunk): for logs and configs."""
        return {"windows": float(len(self)), "k": float(self.k), "radius": self.radius,
                "mean_neighbours_found": float(self.found.mean()),
                "windows_with_any": float((self.found > 0).mean())}


def window_features(dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(standardised low-dim observations of every window [N, F], episode index of every window [N], every
    window's action chunk [N, T, A]), in one pass over the dataset."""
    rows, chunks = [], []
    for index in range(len(dataset)):
        item = dataset[index]
        obs = item["obs"]
        rows.append(np.concatenate([np.asarray(obs[key], np.float64).ravel() for key in sorted(obs)
                                    if np.asarray(obs[key]).dtype != np.uint8]))
        chunks.append(item["action"])
    features = np.stack(rows)  # [N, F]
    if features.shape[1] == 0:
        raise ValueError("NeighbourPositives needs low-dim observations; this dataset has images only")
    std = features.std(axis=0)
    features = (features - features.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return features, np.asarray(dataset.sampler.window_episodes), np.stack(chunks)


def nearest_other_episode(features: np.ndarray, episodes: np.ndarray, k: int,
                          radius: float) -> tuple[np.ndarray, np.ndarray]:
    """For each window, k windows of other episodes within ``radius`` (nearest first), padded with the
    window itself: (indices [N, k], number of real neighbours [N])."""
    tree = cKDTree(features)
    n = len(features)
    neighbours = np.repeat(np.arange(n)[:, None], k, axis=1)  # [N, k], default: own chunk
    found = np.zeros(n, dtype=np.int64)
    # windows of one episode crowd the nearest ones: ask for more and keep other episodes only
    query = min(n, k + 64)
    distances, indices = tree.query(features, k=query, distance_upper_bound=radius)  # [N, query]
    for i in range(n):
        valid = indices[i][np.isfinite(distances[i])]
        others = valid[episodes[valid] != episodes[i]][:k]
        neighbours[i, :len(others)] = others
        found[i] = len(others)
    return neighbours, found

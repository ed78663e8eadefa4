"""Extra positives: the chunks of the nearest windows of OTHER demonstrations, within a radius."""

from __future__ import annotations

import numpy as np
import pytest

from drifting_policy.data.neighbours import NeighbourPositives, nearest_other_episode
from drifting_policy.data.sequence import SequenceSampler


class LineDataset:
    """Windows over episodes whose 1-D state is given per step; the action at a step is (episode, step)."""

    def __init__(self, states_per_episode: list[list[float]]):
        lengths = [len(states) for states in states_per_episode]
        self.states = np.concatenate(states_per_episode).astype(np.float32)[:, None]  # [T, 1]
        steps = [(e, t) for e, n in enumerate(lengths) for t in range(n)]
        self.actions = np.array(steps, np.float32)  # [T, 2]
        # one-step windows: every step starts a window
        self.sampler = SequenceSampler(np.cumsum(lengths), prediction_horizon=1, obs_horizon=1,
                                       action_horizon=1)

    def __len__(self):
        return len(self.sampler)

    def __getitem__(self, index):
        rows = self.sampler.rows(index)
        return {"obs": {"state": self.states[rows[:1]]}, "action": self.actions[rows]}


def test_neighbours_are_other_episodes_nearest_first_and_far_ones_fall_back_to_the_own_chunk():
    # episode 0 passes 0, 1, 2; episode 1 passes 0.1, 5; episode 2 passes 1.2, 100
    dataset = LineDataset([[0.0, 1.0, 2.0], [0.1, 5.0], [1.2, 100.0]])
    wrapped = NeighbourPositives(dataset, k=2, radius=0.5)
    # standardised units: the states' std is ~36, so radius 0.5 spans ~18 state units
    by_state = {round(float(dataset[i]["obs"]["state"][0, 0]), 3): i for i in range(len(dataset))}
    neighbour_states = {state: sorted(float(dataset[j]["obs"]["state"][0, 0]) for j in wrapped.neighbours[i])
                        for state, i in by_state.items()}
    assert neighbour_states[0.0] == pytest.approx([0.1, 1.2])  # never 1.0 or 2.0: same episode
    assert neighbour_states[5.0] == pytest.approx([1.2, 2.0])  # nearest of other episodes (1.0 is farther)
    assert neighbour_states[100.0] == [100.0, 100.0]  # nothing within the radius: its own chunk twice
    item = wrapped[by_state[0.1]]
    assert item["neighbour_action"].shape == (2, 1, 2)  # [k, T, A]
    assert [tuple(chunk[0]) for chunk in item["neighbour_action"]] == [(0.0, 0.0), (0.0, 1.0)]
    np.testing.assert_array_equal(item["action"], dataset[by_state[0.1]]["action"])
    assert wrapped.summary()["windows_with_any"] == pytest.approx(6 / 7)


def test_radius_and_k_are_checked():
    features = np.array([[0.0], [0.05], [3.0]])
    indices, found = nearest_other_episode(features, np.array([0, 1, 2]), k=1, radius=0.1)
    assert indices[:, 0].tolist() == [1, 0, 2] and found.tolist() == [1, 1, 0]
    with pytest.raises(ValueError, match="k=0"):
        NeighbourPositives(LineDataset([[0.0, 1.0]]), k=0, radius=1.0)
    with pytest.raises(ValueError, match="radius"):
        NeighbourPositives(LineDataset([[0.0, 1.0]]), k=1, radius=0.0)

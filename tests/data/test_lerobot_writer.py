"""LeRobotWriter: LeRobot's v3.0 metadata (info, stats, tasks, episodes) and safe destinations."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from lerobot_fakes import LENGTHS, write_lerobot

from drifting_policy.data.lerobot_writer import LeRobotWriter, aggregate_stats, feature_stats


def test_info_tasks_and_stats_files(tmp_path):
    root = write_lerobot(tmp_path / "ds")
    info = json.loads((root / "meta/info.json").read_text())
    assert info["splits"] == {"train": "0:3"} and info["total_tasks"] == 1
    assert info["features"]["timestamp"] == {"dtype": "float32", "shape": [1], "names": None}
    assert info["features"]["observation.image"]["info"]["video.codec"] == "h264"
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["__index_level_0__"]
    assert tasks.to_pydict() == {"task_index": [0], "__index_level_0__": ["test task"]}
    stats = json.loads((root / "meta/stats.json").read_text())
    assert np.array(stats["observation.image"]["mean"]).shape == (3, 1, 1)  # per channel, in [0, 1]
    assert stats["action"]["count"] == [sum(LENGTHS)]
    assert set(stats["action"]) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    frames = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert frames.column_names == ["observation.state", "action", "timestamp", "frame_index", "episode_index",
                                   "index", "task_index"]
    assert frames["index"].to_pylist() == list(range(sum(LENGTHS)))


def test_aggregated_stats_equal_the_whole_dataset_stats():
    rng = np.random.default_rng(0)
    episodes = [rng.normal(size=(n, 3)) * (i + 1) for i, n in enumerate((5, 9, 7))]
    merged = aggregate_stats([feature_stats(e) for e in episodes])
    whole = feature_stats(np.concatenate(episodes))
    for key in ("min", "max", "mean", "std", "count"):
        np.testing.assert_allclose(merged[key], whole[key], rtol=1e-10)


def test_refuses_existing_out_and_abort_leaves_nothing(tmp_path):
    out = write_lerobot(tmp_path / "ds")
    with pytest.raises(FileExistsError, match="exists; pass overwrite"):
        LeRobotWriter(out, 10, {"action": {"dtype": "float32", "shape": [2], "names": None}}, "t")
    features = {"action": {"dtype": "float32", "shape": [2], "names": None}}
    writer = LeRobotWriter(tmp_path / "other", 10, features, "t")
    writer.add_episode({"action": np.zeros((4, 2), np.float32)})
    writer.abort()
    assert not (tmp_path / "other").exists() and not (tmp_path / "other.partial").exists()


def test_episode_checks_name_the_feature(tmp_path):
    features = {"action": {"dtype": "float32", "shape": [2], "names": None},
                "observation.state": {"dtype": "float32", "shape": [3], "names": None}}
    writer = LeRobotWriter(tmp_path / "ds", 10, features, "t")
    with pytest.raises(ValueError, match=r"observation.state is \(4, 2\), expected \[4, \*\[3\]\]"):
        writer.add_episode({"action": np.zeros((4, 2)), "observation.state": np.zeros((4, 2))})
    with pytest.raises(ValueError, match="not allowed"):
        LeRobotWriter(tmp_path / "x", 10, {"index": features["action"]}, "t")
    writer.abort()


def test_overwrite_replaces_the_folder_and_leaves_nothing_beside_it(tmp_path):
    features = {"action": {"dtype": "float32", "shape": [2], "names": None}}
    out = write_lerobot(tmp_path / "ds")
    writer = LeRobotWriter(out, 10, features, "t", overwrite=True)
    writer.add_episode({"action": np.ones((4, 2), np.float32)})
    writer.finish()
    writer.abort()  # after finish: closing again is harmless and the dataset stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    info = json.loads((out / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"]) == (1, 4)
    assert not (out / "videos").exists()  # nothing of the replaced dataset survives inside it

"""read_lerobot on malformed folders: each defect is one line naming the offending file and the fix."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lerobot_fakes import FPS, LENGTHS, frames, write_lerobot

from drifting_policy.data.lerobot_format import read_lerobot
from drifting_policy.data.lerobot_video import VideoWriter

NAMES = ["observation.state", "observation.image", "action"]
DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
VIDEO = "videos/observation.image/chunk-000/file-000.mp4"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return write_lerobot(tmp_path_factory.mktemp("lerobot") / "ds")


@pytest.fixture
def root(pristine, tmp_path):
    return shutil.copytree(pristine, tmp_path / "ds")


def read_error(root, error_type):
    with pytest.raises(error_type) as caught:
        read_lerobot(root, NAMES, progress=False)
    message = str(caught.value)
    assert "\n" not in message
    return message


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_a_good_folder_reads(root):
    data = read_lerobot(root, NAMES, progress=False)
    assert data.arrays["observation.image"].shape == (sum(LENGTHS), 16, 16, 3)
    np.testing.assert_array_equal(data.episode_ends, np.cumsum(LENGTHS))


def test_hub_repo_id_is_refused_without_download():
    with pytest.raises(FileNotFoundError, match=r"'lerobot/pusht' is not a local folder; nothing is downl"):
        read_lerobot("lerobot/pusht", NAMES)


def test_missing_info_json(root):
    (root / "meta/info.json").unlink()
    message = read_error(root, FileNotFoundError)
    assert f"{root}/meta/info.json is missing" in message and "pass the folder that holds" in message


def test_missing_video_file(root):
    (root / VIDEO).unlink()
    message = read_error(root, FileNotFoundError)
    assert str(root / VIDEO) in message and "export it again" in message


def test_info_total_frames_disagrees_with_episodes(root):
    edit_json(root / "meta/info.json", total_frames=sum(LENGTHS) + 1)
    message = read_error(root, ValueError)
    assert "meta/episodes" in message and "total_frames=32" in message
    assert "export the dataset again" in message


def test_parquet_has_fewer_frames_than_the_metadata(root):
    table = pq.read_table(root / DATA)
    pq.write_table(table.slice(0, table.num_rows - 2), root / DATA)
    message = read_error(root, ValueError)
    assert f"{root / DATA} holds {sum(LENGTHS) - 2} frames" in message and f"say {sum(LENGTHS)}" in message


def test_episode_lengths_disagree_with_the_parquet(root):
    table = pq.read_table(root / EPISODES)
    lengths = table["length"].to_pylist()
    lengths[0], lengths[1] = lengths[0] + 1, lengths[1] - 1  # same total, wrong bounds
    ends = np.cumsum(lengths).tolist()
    table = table.set_column(table.schema.get_field_index("length"), "length", pa.array(lengths))
    table = table.set_column(table.schema.get_field_index("dataset_to_index"), "dataset_to_index",
                             pa.array(ends))
    table = table.set_column(table.schema.get_field_index("dataset_from_index"), "dataset_from_index",
                             pa.array([0, *ends[:-1]]))
    pq.write_table(table, root / EPISODES)
    message = read_error(root, ValueError)
    assert str(root / DATA) in message and "the episodes table puts episode 0" in message


def test_video_shorter_than_the_episodes_table(root):
    writer = VideoWriter(root / VIDEO, FPS, 16, 16)
    writer.write(frames(sum(LENGTHS) - 3, 0))  # the last episode loses its last 3 frames
    writer.close()
    message = read_error(root, ValueError)
    assert str(root / VIDEO) in message and f"for episode {len(LENGTHS) - 1}" in message


def test_unevenly_spaced_timestamps(root):
    table = pq.read_table(root / DATA)
    timestamps = table["timestamp"].to_numpy().copy()
    timestamps[4] += 0.07
    table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp",
                             pa.array(timestamps, pa.float32()))
    pq.write_table(table, root / DATA)
    message = read_error(root, ValueError)
    assert str(root / DATA) in message and "row 4" in message and "fixed rate" in message


def test_other_codebase_version_names_the_converter(root):
    edit_json(root / "meta/info.json", codebase_version="v2.1")
    message = read_error(root, ValueError)
    assert "codebase_version=v2.1" in message and "convert_dataset_v21_to_v30" in message

"""Write episodes as a LeRobot v3.0 dataset folder that LeRobot's own ``LeRobotDataset`` opens.

    writer = LeRobotWriter("data/pusht/pusht_lerobot", fps=10, features={...}, task="Push the T ...")
    writer.add_episode({"observation.state": [T, 2], "action": [T, 2], "observation.image": [T, H, W, 3]})
    writer.finish(provenance={...})   # writes meta/, renames <out>.partial to <out>

``features`` is {name: {"dtype": "float32" | "video", "shape": [...], "names": [...] | None}}; the frame
columns (timestamp, frame_index, episode_index, index, task_index) are added. All episodes go to one data
file and one video file per camera (chunk-000/file-000); the episodes table locates each episode in them.
Statistics (meta/stats.json and the episodes table's stats/ columns) are LeRobot's: min, max, mean, std,
count and quantiles q01..q99, per channel in [0, 1] for cameras.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from drifting_policy.common.io import replace_folder
from drifting_policy.data.lerobot_format import (
    CODEBASE_VERSION,
    DATA_PATH,
    EPISODES_PATH,
    INFO_PATH,
    PROVENANCE_PATH,
    STATS_PATH,
    TASKS_PATH,
    VIDEO_PATH,
)
from drifting_policy.data.lerobot_video import VideoWriter, video_info

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)  # LeRobot's DEFAULT_QUANTILES, keys q01 .. q99
FRAME_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
PARTIAL_SUFFIX = ".partial"  # a folder being written; renamed to its final name by finish()


class LeRobotWriter:
    """Episodes in, a LeRobot v3.0 folder out (see the module docstring)."""

    def __init__(self, out: str | Path, fps: int, features: Mapping[str, Mapping[str, Any]], task: str,
                 robot_type: str | None = None, overwrite: bool = False):
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise FileExistsError(f"{self.out} exists; pass overwrite (overwrite=true / --overwrite) to "
                                  "replace it, or choose another out")
        bad = [name for name in features if "/" in name or name in FRAME_FEATURES]
        if bad:
            raise ValueError(f"feature names {bad} are not allowed (no '/', not a frame column); rename them")
        self.partial = self.out.with_name(self.out.name + PARTIAL_SUFFIX)
        if self.partial.exists():  # left by an interrupted export
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        self.fps, self.task, self.robot_type = int(fps), task, robot_type
        self.features = {name: {**spec, "shape": list(spec["shape"])} for name, spec in features.items()}
        self.video_keys = [name for name, spec in self.features.items() if spec["dtype"] == "video"]
        self._videos: dict[str, VideoWriter] = {}
        self._data_writer = None
        self._episodes: list[dict[str, Any]] = []
        self._stats: list[dict[str, dict[str, np.ndarray]]] = []
        self.n_frames = 0

    @property
    def n_episodes(self) -> int:
        return len(self._episodes)

    def add_episode(self, arrays: Mapping[str, np.ndarray]) -> None:
        """One episode: {feature name: [T, *shape]} for every feature (uint8 [T, H, W, 3] for videos)."""
        if sorted(arrays) != sorted(self.features):
            raise ValueError(f"add_episode: got features {sorted(arrays)}, the dataset has "
                             f"{sorted(self.features)}")
        length = len(next(iter(arrays.values())))
        for name, values in arrays.items():
            shape = tuple(self.features[name]["shape"])
            if len(values) != length or tuple(np.shape(values)[1:]) != shape or length == 0:
                raise ValueError(f"add_episode (episode {self.n_episodes}): {name} is {np.shape(values)}, "
                                 f"expected [{length or 'T > 0'}, *{list(shape)}] like the other features")
        frames = {
            "timestamp": (np.arange(length) / self.fps).astype(np.float32),
            "frame_index": np.arange(length, dtype=np.int64),
            "episode_index": np.full(length, self.n_episodes, dtype=np.int64),
            "index": np.arange(self.n_frames, self.n_frames + length, dtype=np.int64),
            "task_index": np.zeros(length, dtype=np.int64),
        }
        row = {"episode_index": self.n_episodes, "tasks": [self.task], "length": length,
               "data/chunk_index": 0, "data/file_index": 0, "dataset_from_index": self.n_frames,
               "dataset_to_index": self.n_frames + length}
        for name in self.video_keys:
            row.update(self._write_video(name, np.asarray(arrays[name], dtype=np.uint8)))
        self._write_frames({**{n: v for n, v in arrays.items() if n not in self.video_keys}, **frames})
        stats = {name: feature_stats(np.asarray(values), name in self.video_keys)
                 for name, values in {**arrays, **frames}.items()}
        row.update({f"stats/{name}/{key}": value.tolist()
                    for name, feature in stats.items() for key, value in feature.items()})
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        self._episodes.append(row)
        self._stats.append(stats)
        self.n_frames += length

    def _write_video(self, name: str, frames: np.ndarray) -> dict[str, Any]:
        if name not in self._videos:
            path = self.partial / VIDEO_PATH.format(video_key=name, chunk_index=0, file_index=0)
            self._videos[name] = VideoWriter(path, self.fps, frames.shape[1], frames.shape[2])
        writer = self._videos[name]
        start = writer.frames_written
        writer.write(frames)
        return {f"videos/{name}/chunk_index": 0, f"videos/{name}/file_index": 0,
                f"videos/{name}/from_timestamp": start / self.fps,
                f"videos/{name}/to_timestamp": writer.frames_written / self.fps}

    def _write_frames(self, columns: Mapping[str, np.ndarray]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        names = [n for n in self.features if n not in self.video_keys] + list(FRAME_FEATURES)
        table = pa.table({name: _arrow_column(np.asarray(columns[name]), self._spec(name)) for name in names})
        if self._data_writer is None:
            path = self.partial / DATA_PATH.format(chunk_index=0, file_index=0)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._data_writer = pq.ParquetWriter(path, table.schema, compression="snappy")
        self._data_writer.write_table(table)

    def _spec(self, name: str) -> dict[str, Any]:
        return self.features.get(name) or FRAME_FEATURES[name]

    def finish(self, provenance: Mapping[str, Any] | None = None) -> Path:
        """Write meta/ and move the folder to ``out``; returns ``out``."""
        if not self._episodes:
            raise ValueError(f"{self.out}: no episode was added; nothing to write")
        for writer in self._videos.values():
            writer.close()
        self._data_writer.close()
        self._write_meta(provenance or {})
        return replace_folder(self.partial, self.out)  # an overwritten dataset survives a crash here

    def abort(self) -> None:
        """Drop the partial folder (an interrupted export never leaves a dataset at ``out``)."""
        for writer in self._videos.values():
            writer.close()
        if self._data_writer is not None:
            self._data_writer.close()
        shutil.rmtree(self.partial, ignore_errors=True)

    def _write_meta(self, provenance: Mapping[str, Any]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        features = {**self.features, **FRAME_FEATURES}
        for name in self.video_keys:
            height, width = self.features[name]["shape"][:2]
            features[name] = {**features[name], "info": video_info(self.fps, height, width)}
        info = {"codebase_version": CODEBASE_VERSION, "robot_type": self.robot_type,
                "total_episodes": self.n_episodes, "total_frames": self.n_frames, "total_tasks": 1,
                "chunks_size": 1000, "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
                "fps": self.fps, "splits": {"train": f"0:{self.n_episodes}"}, "data_path": DATA_PATH,
                "video_path": VIDEO_PATH if self.video_keys else None, "features": features}
        _write_json(self.partial / INFO_PATH, info)
        stats = {name: aggregate_stats([s[name] for s in self._stats]) for name in self._stats[0]}
        _write_json(self.partial / STATS_PATH,
                    {name: {key: value.tolist() for key, value in s.items()} for name, s in stats.items()})
        path = self.partial / EPISODES_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self._episodes), path)
        pq.write_table(_tasks_table([self.task]), self.partial / TASKS_PATH)
        if provenance:
            _write_json(self.partial / PROVENANCE_PATH, dict(provenance))


def _arrow_column(values: np.ndarray, spec: Mapping[str, Any]):
    """A feature as LeRobot's HF features store it: shape [1] -> scalar column, [D] -> fixed-size list."""
    import pyarrow as pa

    dtype = np.dtype(spec["dtype"])
    shape = list(spec["shape"])
    if shape == [1]:
        return pa.array(values.reshape(-1).astype(dtype))
    if len(shape) != 1:
        raise ValueError(f"feature of shape {shape}: only [D] vectors (or videos) are written; flatten it")
    flat = pa.array(values.reshape(-1).astype(dtype))
    return pa.FixedSizeListArray.from_arrays(flat, shape[0])


def _tasks_table(tasks: list[str]):
    """meta/tasks.parquet as pandas writes ``DataFrame({"task_index": ...}, index=tasks)`` (LeRobot reads it
    with pandas and looks tasks up by the index)."""
    import pyarrow as pa

    pandas_meta = {"index_columns": ["__index_level_0__"], "column_indexes": [],
                   "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                                "numpy_type": "int64", "metadata": None},
                               {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                                "numpy_type": "object", "metadata": None}],
                   "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.0.0"}
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "__index_level_0__": pa.array(tasks, pa.string())})
    return table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)})


def feature_stats(values: np.ndarray, image: bool = False) -> dict[str, np.ndarray]:
    """LeRobot's per-episode statistics of one feature [T, ...]: per dim, or per channel in [0, 1] with shape
    [3, 1, 1] for images [T, H, W, 3]."""
    if image:
        samples = values.reshape(-1, values.shape[-1]).astype(np.float64) / 255.0  # [T*H*W, 3]
        reshape = (-1, 1, 1)
    else:
        samples = values.reshape(len(values), -1).astype(np.float64)  # [T, D]
        reshape = (-1,)
    stats = {"min": samples.min(0), "max": samples.max(0), "mean": samples.mean(0), "std": samples.std(0)}
    quantiles = np.quantile(samples, QUANTILES, axis=0)  # [Q, D]
    stats.update({f"q{round(q * 100):02d}": value for q, value in zip(QUANTILES, quantiles, strict=True)})
    stats = {key: value.reshape(reshape) for key, value in stats.items()}
    stats["count"] = np.array([len(values)])
    return stats


def aggregate_stats(per_episode: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dataset statistics from per-episode ones: exact min/max/mean/std, count-weighted mean of quantiles
    (LeRobot's aggregation)."""
    counts = np.array([float(s["count"][0]) for s in per_episode])
    weights = (counts / counts.sum()).reshape(-1, *[1] * per_episode[0]["mean"].ndim)
    means = np.stack([s["mean"] for s in per_episode])
    mean = (weights * means).sum(0)
    variance = (weights * (np.stack([s["std"] for s in per_episode]) ** 2 + (means - mean) ** 2)).sum(0)
    out = {"min": np.min([s["min"] for s in per_episode], 0),
           "max": np.max([s["max"] for s in per_episode], 0), "mean": mean, "std": np.sqrt(variance),
           "count": np.array([int(counts.sum())])}
    for key in (k for k in per_episode[0] if k.startswith("q")):
        out[key] = (weights * np.stack([s[key] for s in per_episode])).sum(0)
    return out


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4))

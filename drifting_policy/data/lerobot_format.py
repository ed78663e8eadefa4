"""Read a local LeRobot dataset folder (layout v3.0, as LeRobot 0.4 writes it) into memory.

    <root>/meta/info.json                      fps, features {name: {dtype, shape, names}}, path templates
    <root>/meta/episodes/chunk-000/file-000.parquet   one row per episode: length, dataset_from/to_index,
                                               data/{chunk,file}_index, videos/<key>/{chunk,file}_index,
                                               videos/<key>/{from,to}_timestamp
    <root>/data/chunk-000/file-000.parquet     one row per frame: features, timestamp, frame_index,
                                               episode_index, index, task_index
    <root>/videos/<key>/chunk-000/file-000.mp4 several episodes per file, located by from_timestamp

``read_lerobot(root, names)`` returns the named features as arrays over all frames (episodes in order)
and ``episode_ends``, the replay buffer's layout, so the project's window sampler and split apply
unchanged. Video frames are decoded with PyAV at ``from_timestamp + timestamp`` of each row; the
dataset's own ``meta/stats.json`` is not read (the project fits its own normaliser). Nothing is
downloaded: a root that is not a local folder is refused. Every defect is one line naming the file and
the fix.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
EPISODES_PATH = EPISODES_DIR + "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
PROVENANCE_PATH = "meta/drifting_policy.json"  # ours: the source store's attributes (seeds, expert version)
FRAME_COLUMNS = ("timestamp", "frame_index", "episode_index", "index", "task_index")
IMAGE_DTYPES = ("video", "image")
# A video frame belongs to a row when their times differ by less than this (LeRobot's default tolerance_s).
TIMESTAMP_TOLERANCE_S = 1e-4


@dataclass
class LeRobotData:
    """Features of a LeRobot folder in memory. ``arrays[name]``: [N, *shape] float32, or uint8 [N, H, W, 3]
    for camera features; ``episode_ends`` [n_episodes] int64 cumulative; ``info`` is meta/info.json."""

    root: Path
    info: dict[str, Any]
    arrays: dict[str, np.ndarray]
    episode_ends: np.ndarray
    timestamps: np.ndarray  # [N] float32 seconds from each episode's start
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    def is_camera(self, name: str) -> bool:
        return self.info["features"][name]["dtype"] in IMAGE_DTYPES


def check_local_root(root: str | Path) -> Path:
    """``root`` as a Path if it is an existing local folder; a hub repo id or a missing path is refused."""
    if root is None or str(root) in ("", "???"):
        raise ValueError("task.dataset.root is not set; pass task.dataset.root=<local LeRobot v3.0 folder>")
    path = Path(str(root)).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"LeRobot dataset root={str(root)!r} is not a local folder; nothing is downloaded: pass the path "
            "of a local LeRobot v3.0 dataset folder (e.g. one fetched with `hf download --repo-type dataset "
            "<repo_id> --local-dir <folder>`, or ours: drifting-collect task=pusht format=lerobot "
            "out=<folder>)")
    return path


def read_info(root: Path) -> dict[str, Any]:
    path = root / INFO_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing, so {root} is not a LeRobot dataset folder; pass the "
                                "folder that holds meta/info.json, data/ and videos/")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); restore the file from the dataset") from error
    version = str(info.get("codebase_version", "?"))
    if version != CODEBASE_VERSION:
        raise ValueError(f"{path}: codebase_version={version}, only {CODEBASE_VERSION} is read; convert it "
                         "with LeRobot (python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 "
                         "--repo-id=<id> --root=<folder>)")
    missing = [key for key in ("fps", "features", "total_episodes", "total_frames", "data_path")
               if key not in info]
    if missing:
        raise ValueError(f"{path} lacks {missing}; the file is incomplete: export the dataset again")
    return info


def read_lerobot(root: str | Path, names: Sequence[str], progress: bool = True) -> LeRobotData:
    """The features ``names`` of the LeRobot folder ``root`` (see the module docstring)."""
    root = check_local_root(root)
    info = read_info(root)
    features = info["features"]
    unknown = [name for name in names if name not in features]
    if unknown:
        available = sorted(set(features) - set(FRAME_COLUMNS))
        raise ValueError(f"{root / INFO_PATH} has no feature {unknown}; its features are {available}: map "
                         "the task's keys to them (task.dataset.features.<obs key>=<feature name>)")
    episodes = read_episodes(root, info)
    table = read_frames(root, info, episodes, [n for n in names if features[n]["dtype"] != "video"])
    ends = np.cumsum(episodes["length"]).astype(np.int64)
    arrays = {}
    for name in names:
        if features[name]["dtype"] == "video":
            arrays[name] = read_video_feature(root, info, name, episodes, table["timestamp"], progress)
        else:
            arrays[name] = table[name]
    provenance_path = root / PROVENANCE_PATH
    provenance = json.loads(provenance_path.read_text()) if provenance_path.is_file() else {}
    return LeRobotData(root, info, arrays, ends, table["timestamp"], provenance)


def _read_parquet(path: Path, columns: Sequence[str] | None = None):
    import pyarrow.parquet as pq

    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the dataset is incomplete: copy the whole folder again "
                                "or export it again")
    try:
        return pq.read_table(path, columns=None if columns is None else list(columns))
    except Exception as error:  # pyarrow raises ArrowInvalid, KeyError-like errors for absent columns, ...
        raise ValueError(f"{path}: cannot read it ({type(error).__name__}: {error}); the file is damaged or "
                         "not this layout: export the dataset again") from error


def read_episodes(root: Path, info: dict[str, Any]) -> dict[str, np.ndarray]:
    """The episodes table, one entry per episode in order: {column: [n_episodes]}."""
    import pyarrow as pa

    paths = sorted((root / EPISODES_DIR).glob("*/*.parquet"))
    if not paths:
        raise FileNotFoundError(f"{root / EPISODES_PATH.format(chunk_index=0, file_index=0)} is missing (no "
                                "episodes table); export the dataset again")
    tables = [_read_parquet(path) for path in paths]
    columns = set.intersection(*(set(t.column_names) for t in tables))
    keep = sorted(c for c in columns if not c.startswith("stats/") and c != "tasks")
    table = pa.concat_tables([t.select(keep) for t in tables])
    episodes = {name: table[name].to_numpy() for name in keep}
    where = root / EPISODES_DIR
    required = ("episode_index", "length", "dataset_from_index", "dataset_to_index", "data/chunk_index",
                "data/file_index")
    missing = [name for name in required if name not in episodes]
    if missing:
        raise ValueError(f"{where}: the episodes table lacks columns {missing}; export the dataset again")
    order = np.argsort(episodes["episode_index"], kind="stable")
    episodes = {name: values[order] for name, values in episodes.items()}
    episodes["length"] = episodes["length"].astype(np.int64)
    _check_episodes(root, info, episodes)
    return episodes


def _check_episodes(root: Path, info: dict[str, Any], episodes: dict[str, np.ndarray]) -> None:
    """Episodes 0..n-1 as info.json counts them, consecutive, non-empty, summing to total_frames."""
    where = root / EPISODES_DIR
    n_episodes, lengths = len(episodes["length"]), episodes["length"]
    if n_episodes != int(info["total_episodes"]) or not np.array_equal(episodes["episode_index"],
                                                                       np.arange(n_episodes)):
        raise ValueError(f"{where} lists episodes {_preview(episodes['episode_index'])} but "
                         f"{root / INFO_PATH} says total_episodes={info['total_episodes']}; the metadata "
                         "disagree: export the dataset again")
    if int(lengths.sum()) != int(info["total_frames"]):
        raise ValueError(f"{where}: episode lengths sum to {int(lengths.sum())} frames but "
                         f"{root / INFO_PATH} says total_frames={info['total_frames']}; export the dataset "
                         "again")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    bad = np.flatnonzero((episodes["dataset_from_index"] != bounds[:-1])
                         | (episodes["dataset_to_index"] != bounds[1:]))
    if len(bad) or (lengths < 1).any():
        episode = int(bad[0]) if len(bad) else int(np.flatnonzero(lengths < 1)[0])
        start, stop = episodes["dataset_from_index"][episode], episodes["dataset_to_index"][episode]
        raise ValueError(f"{where}: episode {episode} spans dataset rows [{start}, {stop}) with length "
                         f"{lengths[episode]}; episodes must be consecutive and non-empty: export the "
                         "dataset again")


def read_frames(root: Path, info: dict[str, Any], episodes: dict[str, np.ndarray],
                names: Sequence[str]) -> dict[str, np.ndarray]:
    """{name: [N, *shape]} of the non-video features ``names`` plus ``timestamp`` [N], checked against the
    episodes table (rows per episode, frame_index order) and fps."""
    import pyarrow as pa

    files = sorted(set(zip(episodes["data/chunk_index"].tolist(), episodes["data/file_index"].tolist(),
                           strict=True)))
    columns = [*dict.fromkeys([*names, "timestamp", "frame_index", "episode_index", "index"])]
    paths = [root / info["data_path"].format(chunk_index=c, file_index=f) for c, f in files]
    tables = []
    for path in paths:
        table = _read_parquet(path)
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise ValueError(f"{path} lacks columns {missing}; meta/info.json lists them: export the dataset "
                             "again")
        tables.append(table.select(columns))
    table = pa.concat_tables(tables).sort_by([("index", "ascending")])
    where = paths[0] if len(paths) == 1 else root / "data"
    frame_index = _check_rows(table, episodes, root, where)
    timestamps = table["timestamp"].to_numpy().astype(np.float32)
    _check_timestamps(timestamps, frame_index, int(info["fps"]), where)
    out = {"timestamp": timestamps}
    for name in names:
        out[name] = _column_array(table[name], info["features"][name], where, name)
    return out


def _check_rows(table, episodes: dict[str, np.ndarray], root: Path, where: Path) -> np.ndarray:
    """The frames must be the episodes table's, in order; returns their frame_index [N]."""
    expected = int(episodes["length"].sum())
    if table.num_rows != expected:
        raise ValueError(f"{where} holds {table.num_rows} frames but {root / EPISODES_DIR} and "
                         f"{root / INFO_PATH} say {expected}; the data and metadata disagree: export the "
                         "dataset again")
    episode_index = table["episode_index"].to_numpy()
    frame_index = table["frame_index"].to_numpy()
    expected_episode = np.repeat(np.arange(len(episodes["length"])), episodes["length"])
    starts = np.repeat(np.cumsum(episodes["length"]) - episodes["length"], episodes["length"])
    expected_frame = np.arange(expected) - starts
    bad = np.flatnonzero((episode_index != expected_episode) | (frame_index != expected_frame))
    if len(bad):
        row = int(bad[0])
        raise ValueError(f"{where}: row {row} is episode {episode_index[row]} frame {frame_index[row]} but "
                         f"the episodes table puts episode {expected_episode[row]} frame "
                         f"{expected_frame[row]} there; export the dataset again")
    return frame_index


def _check_timestamps(timestamps: np.ndarray, frame_index: np.ndarray, fps: int, where: Path) -> None:
    """Frames must be 1/fps apart: the window sampler counts steps, not seconds."""
    error = np.abs(timestamps.astype(np.float64) - frame_index / fps)
    if len(error) and error.max() > 0.5 / fps:
        row = int(np.argmax(error))
        raise ValueError(f"{where}: row {row} (frame {frame_index[row]}) has timestamp "
                         f"{timestamps[row]:.4f} s but fps={fps} puts it at {frame_index[row] / fps:.4f} s; "
                         "the frames are not evenly spaced: resample the dataset to a fixed rate")


def _column_array(column, feature: dict[str, Any], where: Path, name: str) -> np.ndarray:
    """One feature column as [N, *shape]: float features as float32, PNG/JPEG images as uint8 HWC."""
    shape = tuple(feature["shape"])
    if feature["dtype"] == "image":
        return np.stack([_decode_image(cell["bytes"], where, name) for cell in column.to_pylist()])
    values = np.asarray(_flatten_lists(column), dtype=np.float32)
    size = int(np.prod(shape, dtype=np.int64))
    if values.size != len(column) * size:
        per_frame = values.size // max(len(column), 1)
        raise ValueError(f"{where}: column {name} holds {per_frame} values per frame "
                         f"but meta/info.json gives shape {list(shape)}; export the dataset again")
    return values.reshape(len(column), *shape)


def _flatten_lists(column) -> np.ndarray:
    """The numbers of a (possibly nested, fixed-size) list column, flattened in row order."""
    import pyarrow as pa

    array = column.combine_chunks()
    while pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type) \
            or pa.types.is_large_list(array.type):
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False)


def _decode_image(data: bytes, where: Path, name: str) -> np.ndarray:
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{where}: an image of {name} cannot be decoded; export the dataset again")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)  # [H, W, 3]


def read_video_feature(root: Path, info: dict[str, Any], name: str, episodes: dict[str, np.ndarray],
                       timestamps: np.ndarray, progress: bool = True) -> np.ndarray:
    """uint8 [N, H, W, 3]: for each row the video frame at its episode's from_timestamp + timestamp."""
    from tqdm import tqdm

    from drifting_policy.data.lerobot_video import decode_video

    prefix = f"videos/{name}/"
    columns = [prefix + c for c in ("chunk_index", "file_index", "from_timestamp")]
    missing = [c for c in columns if c not in episodes]
    if missing or not info.get("video_path"):
        raise ValueError(f"{root / EPISODES_DIR}: video feature {name} has no {missing or 'video_path'} "
                         "column; export the dataset again")
    lengths = episodes["length"]
    starts = np.cumsum(lengths) - lengths
    files = sorted(set(zip(episodes[columns[0]].tolist(), episodes[columns[1]].tolist(), strict=True)))
    out: np.ndarray | None = None
    for chunk, file in tqdm(files, desc=f"decode {name}", unit="file", disable=not progress):
        path = root / info["video_path"].format(video_key=name, chunk_index=chunk, file_index=file)
        frames, times = decode_video(path)
        if out is None:
            out = np.empty((int(lengths.sum()), *frames.shape[1:]), dtype=np.uint8)
        in_file = np.flatnonzero((episodes[columns[0]] == chunk) & (episodes[columns[1]] == file))
        for episode in in_file:
            rows = np.arange(starts[episode], starts[episode] + lengths[episode])
            query = float(episodes[columns[2]][episode]) + timestamps[rows].astype(np.float64)
            nearest = _nearest(times, query)
            gap = np.abs(times[nearest] - query)
            if gap.max() >= TIMESTAMP_TOLERANCE_S:
                row = int(np.argmax(gap))
                raise ValueError(f"{path}: no frame at {query[row]:.4f} s for episode {episode} frame {row} "
                                 f"(nearest {times[nearest[row]]:.4f} s, the file has {len(times)} frames up "
                                 f"to {times[-1]:.4f} s); the video and the episodes table disagree: "
                                 "export the dataset again")
            out[rows] = frames[nearest]
    return out


def _nearest(times: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index into sorted ``times`` of the value nearest to each ``query``."""
    right = np.clip(np.searchsorted(times, query), 1, len(times) - 1) if len(times) > 1 else \
        np.zeros(len(query), dtype=np.int64)
    if len(times) == 1:
        return right
    left = right - 1
    return np.where(np.abs(times[left] - query) <= np.abs(times[right] - query), left, right)


def _preview(values: np.ndarray) -> str:
    values = values.tolist()
    if len(values) <= 6:
        return str(values)
    return f"[{values[0]}, {values[1]}, ..., {values[-1]}] ({len(values)})"

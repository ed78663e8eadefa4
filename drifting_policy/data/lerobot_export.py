"""The project's demonstration stores (Push-T zarr, robomimic hdf5) as LeRobot v3.0 dataset folders.

    python -m drifting_policy.data.lerobot export --from data/pusht/pusht_scripted.zarr \
        --out data/pusht/pusht_scripted_lerobot

Feature names follow LeRobot's conventions (its Push-T datasets use the first two):

    Push-T zarr                       LeRobot feature                     project obs key (task=lerobot)
    state[:, :2] (agent xy)           observation.state [2]               agent_pos
    keypoint [9, 2] (block)           observation.environment_state [18]  keypoint (reshaped to [9, 2])
    state [5] (agent xy, block pose)  observation.full_state [5]          state
    img [96, 96, 3]                   observation.image (video)           image
    action [2]                        action [2]                          action

    robomimic hdf5                    LeRobot feature
    obs/<low-dim key>                 observation.<key> (e.g. observation.robot0_eef_pos)
    eef_pos + eef_quat + gripper_qpos observation.state [9]
    obs/<camera>_image                observation.images.<camera> (video)
    actions / actions_abs             action [7] / action_abs [7]

Push-T is recorded at 10 Hz (Diffusion Policy's control rate), robomimic at 20 Hz. The store's attributes
(collection seeds, expert version) go to meta/drifting_policy.json, which LeRobot ignores.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from drifting_policy.data.lerobot_writer import LeRobotWriter

PUSHT_FPS = 10
ROBOMIMIC_FPS = 20
PUSHT_TASK = "Push the T-shaped block onto the T-shaped target."
ROBOMIMIC_TASKS = {"Lift": "Lift the cube.", "PickPlaceCan": "Pick up the can and place it in its bin.",
                   "NutAssemblySquare": "Put the square nut on the square peg.", "ToolHang": "Hang the tool."}
PUSHT_FEATURES = {  # LeRobot feature -> (zarr key, columns of it or None, names)
    "observation.state": ("state", slice(0, 2), ["x", "y"]),
    "observation.environment_state": ("keypoint", None, [f"kp{i}_{c}" for i in range(9) for c in "xy"]),
    "observation.full_state": ("state", None, ["agent_x", "agent_y", "block_x", "block_y", "block_angle"]),
    "observation.image": ("img", None, ["height", "width", "channels"]),
    "action": ("action", None, ["x", "y"]),
}
ROBOMIMIC_STATE = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")


def export(source: str | Path, out: str | Path, overwrite: bool = False, progress: bool = True) -> Path:
    """Write the zarr (Push-T) or hdf5 (robomimic) store ``source`` as a LeRobot folder ``out``."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist; collect it first (drifting-collect task=pusht "
                                f"out={source}) or pass the path of an existing .zarr / .hdf5 store")
    if source.suffix == ".zarr":
        fps, task, robot_type, features, episodes, provenance = _pusht_source(source)
    elif source.suffix in (".hdf5", ".h5"):
        fps, task, robot_type, features, episodes, provenance = _robomimic_source(source)
    else:
        raise ValueError(f"--from {source}: expected a Push-T .zarr store or a robomimic .hdf5 file")
    writer = LeRobotWriter(out, fps, features, task, robot_type, overwrite=overwrite)
    try:
        for episode in tqdm(episodes, total=provenance["episodes"], desc="export lerobot", unit="ep",
                            disable=not progress):
            writer.add_episode(episode)
        return writer.finish(provenance)
    except BaseException:
        writer.abort()
        raise


def _pusht_source(path: Path):
    from drifting_policy.data.replay_buffer import ReplayBuffer

    buffer = ReplayBuffer.open(path, keys=("state", "action"))
    mapping = {name: spec for name, spec in PUSHT_FEATURES.items() if spec[0] in buffer}
    features = {}
    for name, (key, _, names) in mapping.items():
        if key == "img":
            features[name] = {"dtype": "video", "shape": list(buffer[key].shape[1:]), "names": names}
        else:
            features[name] = {"dtype": "float32", "shape": [len(names)], "names": names}

    def episodes() -> Iterator[dict[str, np.ndarray]]:
        for index in range(buffer.n_episodes):
            raw = buffer.get_episode(index, {spec[0] for spec in mapping.values()})
            episode = {}
            for name, (key, columns, _) in mapping.items():
                values = raw[key] if columns is None else raw[key][:, columns]
                episode[name] = _as_uint8(values) if key == "img" else \
                    values.reshape(len(values), -1).astype(np.float32)
            yield episode

    provenance = {**buffer.attrs, "source": str(path), "episodes": buffer.n_episodes}
    return PUSHT_FPS, PUSHT_TASK, None, features, episodes(), provenance


def _robomimic_source(path: Path):
    import h5py

    from drifting_policy.data.robomimic_hdf5 import read_env_args, select_demos

    file = h5py.File(path, "r")
    try:
        env_name = read_env_args(file, path).get("env_name", "")
        names = select_demos(file, path)
        features = _robomimic_features(file["data"][names[0]])
        provenance = {**{k: _plain(v) for k, v in file["data"].attrs.items() if k != "env_args"},
                      "source": str(path), "episodes": len(names)}
    except BaseException:
        file.close()
        raise
    task = ROBOMIMIC_TASKS.get(env_name, env_name or "robomimic task")
    episodes = _robomimic_episodes(file, path, names, features)
    return ROBOMIMIC_FPS, task, "Panda", features, episodes, provenance


def _robomimic_name(key: str) -> str:
    """LeRobot's name for a robomimic obs key or action dataset."""
    if key in ("actions", "actions_abs"):
        return "action" if key == "actions" else "action_abs"
    if key.endswith("_image"):
        return f"observation.images.{key[: -len('_image')]}"
    return f"observation.{key}"


def _robomimic_features(first) -> dict[str, dict[str, Any]]:
    """The LeRobot features of a robomimic file, from its first demo."""
    features: dict[str, dict[str, Any]] = {}
    for key in sorted(first["obs"]):
        shape = list(first["obs"][key].shape[1:])
        if key.endswith("_image"):
            features[_robomimic_name(key)] = {"dtype": "video", "shape": shape,
                                              "names": ["height", "width", "channels"]}
        else:
            size = int(np.prod(shape))
            features[_robomimic_name(key)] = {"dtype": "float32", "shape": [size], "names": None}
    if all(key in first["obs"] for key in ROBOMIMIC_STATE):
        size = sum(int(np.prod(first["obs"][key].shape[1:])) for key in ROBOMIMIC_STATE)
        features["observation.state"] = {"dtype": "float32", "shape": [size], "names": None}
    for key in ("actions", "actions_abs"):
        if key in first:
            size = int(first[key].shape[1])
            features[_robomimic_name(key)] = {"dtype": "float32", "shape": [size], "names": None}
    return features


def _robomimic_episodes(file, path: Path, names: list[str],
                        features: dict[str, Any]) -> Iterator[dict[str, np.ndarray]]:
    """{LeRobot feature: [T, ...]} per demo; closes ``file`` when done."""
    from drifting_policy.data.robomimic_hdf5 import validate_demo

    try:
        for demo_name in names:
            demo = file["data"][demo_name]
            obs_keys = tuple(sorted(demo["obs"]))
            length = validate_demo(demo, f"{path}:data/{demo_name}", obs_keys)
            obs = {key: demo["obs"][key][:length] for key in obs_keys}
            episode = {_robomimic_name(key): _as_uint8(values) if key.endswith("_image")
                       else values.reshape(length, -1).astype(np.float32) for key, values in obs.items()}
            if "observation.state" in features:
                state = [obs[key].reshape(length, -1) for key in ROBOMIMIC_STATE]
                episode["observation.state"] = np.concatenate(state, axis=1).astype(np.float32)
            for key in ("actions", "actions_abs"):
                if _robomimic_name(key) in features:
                    episode[_robomimic_name(key)] = demo[key][:length].astype(np.float32)
            yield episode
    finally:
        file.close()


def _as_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 HWC frames; Diffusion Policy's own zarr keeps float32 images in [0, 255]."""
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint(images.astype(np.float32)), 0, 255).astype(np.uint8)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if hasattr(value, "item") else value


def main(argv: list[str] | None = None) -> None:
    from drifting_policy.common.entry import report_user_errors

    parser = argparse.ArgumentParser(prog="python -m drifting_policy.data.lerobot",
                                     description="Convert a project store to a LeRobot v3.0 dataset folder.")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("export", help="zarr (Push-T) or hdf5 (robomimic) -> LeRobot v3.0 folder")
    command.add_argument("--from", dest="source", required=True, help="a .zarr or .hdf5 store")
    command.add_argument("--out", required=True, help="the LeRobot dataset folder to write")
    command.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    args = parser.parse_args(argv)
    out = report_user_errors(export)(args.source, args.out, overwrite=args.overwrite)
    print(f"wrote {out}")

"""robomimic hdf5 demonstrations (ours or real robomimic files) as a torch Dataset of raw training windows.

Samples have the same layout as the Push-T dataset, with the env's observation keys::

    {"obs": {key: [obs_horizon, ...]}, "action": float32 [prediction_horizon, action_dim]}

Low-dim keys are float32 (``object`` [D_obj], ``robot0_eef_pos`` [3], ``robot0_eef_quat`` [4],
``robot0_gripper_qpos`` [2]); camera keys (``*_image``) stay uint8 [H, W, 3]. Actions are the file's
``actions`` (7-D OSC_POSE delta) or, with ``abs_action=True``, ``actions_abs`` (or ``actions`` of a file whose
env is absolute) converted to 10-D [position 3, rotation-6D 6, gripper 1] as Diffusion Policy does, so that a
min/max normaliser never wraps an angle (the rotation dims are left unnormalised:
``normalizer_identity_dims``); ``action_10d_to_7d`` maps policy outputs back to env actions (the task
configs ``*_state_abs`` name it as the runner's ``action_transform``).
Windows come from ``SequenceSampler`` (Diffusion Policy's padding); the split is by demo.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from scipy.spatial.transform import Rotation

from drifting_policy.data.robomimic_hdf5 import RobomimicFileError, read_env_args, select_demos, validate_demo
from drifting_policy.data.sequence import SequenceSampler, WindowDataset, episode_split
from drifting_policy.data.validation import check_values, reading

LOW_DIM_KEYS = ("object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
KNOWN_DIMS = {"robot0_eef_pos": (3,), "robot0_eef_quat": (4,), "robot0_gripper_qpos": (2,)}
OBJECT_DIMS = {"Lift": 10, "PickPlaceCan": 14, "NutAssemblySquare": 14, "ToolHang": 44}
SPLITS = ("train", "val")
ROTATION_6D_DIMS = tuple(range(3, 9))  # of a 10-D absolute action [position 3, rotation-6D 6, gripper 1]


def is_image_key(key: str) -> bool:
    return key.endswith("_image")


def action_7d_to_10d(actions: np.ndarray) -> np.ndarray:
    """[..., 7] (pos, axis-angle, gripper) -> [..., 10] (pos, rotation matrix rows 1-2, gripper)."""
    matrix = Rotation.from_rotvec(actions[..., 3:6].reshape(-1, 3)).as_matrix()  # [N, 3, 3]
    rot6d = matrix[:, :2, :].reshape(*actions.shape[:-1], 6)
    return np.concatenate([actions[..., :3], rot6d, actions[..., 6:]], axis=-1).astype(np.float32)


def action_10d_to_7d(actions: np.ndarray) -> np.ndarray:
    """Inverse of action_7d_to_10d; the 6-D rotation is Gram-Schmidt orthonormalised first."""
    rows = actions[..., 3:9].reshape(-1, 2, 3).astype(np.float64)
    first = rows[:, 0] / np.linalg.norm(rows[:, 0], axis=-1, keepdims=True)
    second = rows[:, 1] - (first * rows[:, 1]).sum(-1, keepdims=True) * first
    second = second / np.linalg.norm(second, axis=-1, keepdims=True)
    matrix = np.stack([first, second, np.cross(first, second)], axis=1)  # [N, 3, 3]
    rotvec = Rotation.from_matrix(matrix).as_rotvec().reshape(*actions.shape[:-1], 3)
    return np.concatenate([actions[..., :3], rotvec, actions[..., 9:]], axis=-1).astype(np.float32)


class RobomimicDataset(WindowDataset):
    """Windows of one split of a robomimic hdf5 file; see the module docstring for the sample layout.

    The split is by demo (``episode_split``: ``val_ratio``, ``max_train_episodes``, ``seed``) over the
    demos of ``filter_key`` (a ``mask/<name>`` of the file, e.g. robomimic's "20_percent") or all demos.
    """

    def __init__(
        self,
        hdf5_path: str | Path,
        obs_keys: tuple[str, ...] = LOW_DIM_KEYS,
        obs_horizon: int = 2,
        action_horizon: int = 8,
        prediction_horizon: int = 16,
        abs_action: bool = False,
        val_ratio: float = 0.02,
        max_train_episodes: int | None = None,
        seed: int = 42,
        split: str = "train",
        filter_key: str | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"RobomimicDataset: split must be one of {SPLITS}, got {split!r}")
        if not obs_keys:
            raise ValueError("RobomimicDataset: obs_keys is empty; e.g. obs_keys=" + repr(LOW_DIM_KEYS))
        self.hdf5_path = Path(hdf5_path)
        self.obs_keys, self.split, self.abs_action = tuple(obs_keys), split, abs_action
        self._kwargs = dict(
            hdf5_path=hdf5_path,
            obs_keys=self.obs_keys,
            obs_horizon=obs_horizon,
            action_horizon=action_horizon,
            prediction_horizon=prediction_horizon,
            abs_action=abs_action,
            val_ratio=val_ratio,
            max_train_episodes=max_train_episodes,
            seed=seed,
            filter_key=filter_key,
        )
        if not self.hdf5_path.exists():
            raise FileNotFoundError(
                f"RobomimicDataset: {self.hdf5_path} does not exist; collect it with "
                "drifting-collect task=lift out=<path>.hdf5"
            )
        with reading(str(self.hdf5_path), "the hdf5 file"), h5py.File(self.hdf5_path, "r") as file:
            self.env_args = read_env_args(file, self.hdf5_path)
            names = select_demos(file, self.hdf5_path, filter_key)
            train_mask, val_mask = episode_split(len(names), val_ratio, max_train_episodes, seed)
            chosen = [names[i] for i in np.flatnonzero(train_mask if split == "train" else val_mask)]
            if not chosen:
                raise ValueError(
                    f"RobomimicDataset: split {split!r} of {self.hdf5_path} has no demos "
                    f"({len(names)} demos, val_ratio={val_ratio}); raise val_ratio or collect more"
                )
            self.demo_names = chosen
            self.arrays, episode_ends = self._load(file, chosen)
        self.sampler = SequenceSampler(episode_ends, prediction_horizon, obs_horizon, action_horizon)
        self.obs_horizon, self.action_horizon = obs_horizon, action_horizon
        self.prediction_horizon = prediction_horizon

    def _action_key(self, file: h5py.File, first: str) -> str:
        if not self.abs_action:
            return "actions"
        if "actions_abs" in file["data"][first]:
            return "actions_abs"
        arm = self.env_args.get("env_kwargs", {}).get("controller_configs", {})
        arm = arm.get("body_parts", {}).get("right", arm)
        if arm.get("input_type") == "absolute" or arm.get("control_delta") is False:
            return "actions"
        raise RobomimicFileError(
            f"{self.hdf5_path}: abs_action=True but the demos have no 'actions_abs' and "
            "the env's controller is delta; set abs_action=false or recollect"
        )

    def _load(self, file: h5py.File, names: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        action_key = self._action_key(file, names[0])
        parts: dict[str, list[np.ndarray]] = {key: [] for key in (*self.obs_keys, "action")}
        for name in names:
            demo = file["data"][name]
            length = validate_demo(demo, f"{self.hdf5_path}:data/{name}", self.obs_keys, action_key)
            for key in self.obs_keys:
                parts[key].append(demo["obs"][key][:length])
            parts["action"].append(demo[action_key][:length])
        arrays = {}
        ends = np.cumsum([len(chunk) for chunk in parts["action"]]).astype(np.int64)
        for key, chunks in parts.items():
            _check_shapes(chunks, key, names, self.hdf5_path)
            values = np.concatenate(chunks)
            check_values(values, key if key == "action" else f"obs/{key}", ends, str(self.hdf5_path),
                         image=is_image_key(key), episode_names=names)
            arrays[key] = values if is_image_key(key) else values.astype(np.float32)
        self._check_known_dims(arrays)
        if self.abs_action:
            arrays["action"] = action_7d_to_10d(arrays["action"])  # [T, 10]
        return arrays, ends

    def _check_known_dims(self, arrays: dict[str, np.ndarray]) -> None:
        expected = dict(KNOWN_DIMS, action=(7,))
        env_name = self.env_args.get("env_name")
        if env_name in OBJECT_DIMS:
            expected["object"] = (OBJECT_DIMS[env_name],)
        for key, value in arrays.items():
            shape = value.shape[1:]
            if is_image_key(key):
                if value.dtype != np.uint8 or len(shape) != 3 or shape[-1] != 3:
                    raise RobomimicFileError(
                        f"{self.hdf5_path}: obs/{key} is {value.dtype} {shape}; expected "
                        "uint8 [H, W, 3] (robomimic's HWC layout)"
                    )
            elif key in expected and shape != expected[key]:
                raise RobomimicFileError(
                    f"{self.hdf5_path}: {key} has per-step shape {shape}; expected "
                    f"{expected[key]} for {env_name}"
                )

    def is_image_key(self, key: str) -> bool:
        return is_image_key(key)

    @property
    def normalizer_identity_dims(self) -> dict[str, tuple[int, ...]]:
        """Dims Normalizer.fit leaves unnormalised: the 6-D rotation of absolute actions (as Diffusion Policy
        does; its entries are unit-vector components already), nothing for delta actions."""
        return {"action": ROTATION_6D_DIMS} if self.abs_action else {}

    def get_validation_dataset(self) -> RobomimicDataset:
        return RobomimicDataset(**self._kwargs, split="val")


def _check_shapes(chunks: list[np.ndarray], key: str, names: list[str], path: Path) -> None:
    shape = chunks[0].shape[1:]
    for name, chunk in zip(names, chunks, strict=True):
        if chunk.shape[1:] != shape:
            raise RobomimicFileError(
                f"{path}: {key} has per-step shape {chunk.shape[1:]} in {name} but {shape} in {names[0]}"
            )

"""robomimic hdf5 files: writer, validating reader, and a pass rendering image observations from ``states``.

Layout (robomimic's, readable by ``robomimic.utils.dataset.SequenceDataset``)::

    data                attrs: env_args (JSON: env_name, type=1, env_kwargs), total (sum of num_samples)
    data/demo_i         attrs: num_samples (T), model_file (MJCF of the scene), + per-demo extras (seed, ...)
      states            float64 [T, state_dim]   flattened MuJoCo state before each action
      actions           float64 [T, 7]           (actions_abs: the controller's goals as absolute actions)
      rewards, dones    float64 [T]              dones[-1] = 1
      obs/<key>         [T, ...]                 observation before each action
      next_obs/<key>    [T, ...]                 observation after it
    mask/train, mask/valid   demo names (bytes)

The one place that knows this layout: the collectors write through ``RobomimicWriter``, the training dataset
(``drifting_policy.data.robomimic``) and the checks read through ``read_env_args`` / ``select_demos`` /
``validate_demo``; every problem raises ``RobomimicFileError`` naming the file, the demo and the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from drifting_policy.data.validation import DatasetError

IMAGE_COMPRESSION = {"compression": "gzip", "compression_opts": 4}
REQUIRED_DEMO_KEYS = ("actions", "states", "rewards", "dones")


class RobomimicFileError(DatasetError):
    """A robomimic hdf5 file lacks something, is inconsistent, or does not hold what was asked for; the
    message names the file, the demo or key, and the fix."""


@dataclass
class Episode:
    """One demonstration in memory; arrays share the leading length T."""

    states: np.ndarray  # float64 [T, state_dim]
    actions: np.ndarray  # float64 [T, action_dim]
    rewards: np.ndarray  # float64 [T]
    dones: np.ndarray  # float64 [T]
    obs: dict[str, np.ndarray]  # key -> [T, ...]
    next_obs: dict[str, np.ndarray]  # key -> [T, ...]
    model_file: str
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # other per-step datasets, e.g. actions_abs
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.actions)


def demo_names(data: h5py.Group) -> list[str]:
    """Demo groups sorted by their index (demo_2 before demo_10)."""
    names = [name for name in data if name.startswith("demo_")]
    return sorted(names, key=lambda name: int(name.split("_")[1]))


class RobomimicWriter:
    """Append demos to a new robomimic file; ``finish()`` writes ``total`` and the train/valid masks."""

    def __init__(self, path: str | Path, env_args: dict, attrs: dict | None = None):
        self.path = Path(path)
        self.file = h5py.File(self.path, "w")
        self.data = self.file.create_group("data")
        self.data.attrs["env_args"] = json.dumps(env_args)
        for key, value in (attrs or {}).items():
            self.data.attrs[key] = value
        self.total = 0
        self.n_demos = 0

    def add(self, episode: Episode) -> str:
        _check_episode(episode)
        name = f"demo_{self.n_demos}"
        group = self.data.create_group(name)
        group.attrs["num_samples"] = len(episode)
        group.attrs["model_file"] = episode.model_file
        for key, value in episode.attrs.items():
            group.attrs[key] = value
        for key in REQUIRED_DEMO_KEYS:
            group.create_dataset(key, data=getattr(episode, key))
        for key, value in episode.extras.items():
            group.create_dataset(key, data=value)
        for prefix, obs in (("obs", episode.obs), ("next_obs", episode.next_obs)):
            for key, value in obs.items():
                options = IMAGE_COMPRESSION if value.dtype == np.uint8 else {}
                group.create_dataset(f"{prefix}/{key}", data=value, **options)
        self.n_demos += 1
        self.total += len(episode)
        return name

    def finish(self, valid_ratio: float = 0.1, seed: int = 0, attrs: dict | None = None) -> None:
        """Write ``total``, ``mask/train`` / ``mask/valid`` (a seeded split of the demos) and close."""
        self.data.attrs["total"] = self.total
        for key, value in (attrs or {}).items():
            self.data.attrs[key] = value
        write_masks(self.file, valid_ratio, seed)
        self.file.close()

    def close(self) -> None:
        self.file.close()


def _check_episode(episode: Episode) -> None:
    length = len(episode)
    arrays = {"states": episode.states, "rewards": episode.rewards, "dones": episode.dones, **episode.extras}
    arrays.update({f"obs/{k}": v for k, v in episode.obs.items()})
    arrays.update({f"next_obs/{k}": v for k, v in episode.next_obs.items()})
    for key, value in arrays.items():
        if len(value) != length:
            raise ValueError(f"episode {key} has {len(value)} steps but actions has {length}")
    if set(episode.obs) != set(episode.next_obs):
        raise ValueError(
            f"obs keys {sorted(episode.obs)} differ from next_obs keys {sorted(episode.next_obs)}"
        )


def write_masks(file: h5py.File, valid_ratio: float, seed: int) -> None:
    """``mask/train`` and ``mask/valid``: a seeded random split of all demos (valid gets round(n * ratio))."""
    if not 0.0 <= valid_ratio < 1.0:
        raise ValueError(f"valid_ratio={valid_ratio}; expected [0, 1)")
    names = demo_names(file["data"])
    order = np.random.default_rng(seed).permutation(len(names))
    n_valid = int(round(len(names) * valid_ratio))
    valid = sorted((names[i] for i in order[:n_valid]), key=lambda n: int(n.split("_")[1]))
    train = [n for n in names if n not in set(valid)]
    if "mask" in file:
        del file["mask"]
    mask = file.create_group("mask")
    mask.create_dataset("train", data=np.array(train, dtype="S"))
    mask.create_dataset("valid", data=np.array(valid, dtype="S"))


# ---- reading and validation -------------------------------------------------------------------------------
def read_env_args(file: h5py.File, path: str | Path = "") -> dict:
    if "data" not in file:
        raise RobomimicFileError(f"{path}: no 'data' group; not a robomimic hdf5 file")
    if "env_args" not in file["data"].attrs:
        raise RobomimicFileError(
            f"{path}: data has no 'env_args' attribute (robomimic stores the env's JSON "
            "there); rewrite the file with RobomimicWriter"
        )
    try:
        env_args = json.loads(file["data"].attrs["env_args"])
    except json.JSONDecodeError as error:
        raise RobomimicFileError(f"{path}: data.attrs['env_args'] is not valid JSON ({error})") from error
    if "env_name" not in env_args:
        raise RobomimicFileError(f"{path}: env_args has no 'env_name' (got keys {sorted(env_args)})")
    return env_args


def select_demos(file: h5py.File, path: str | Path = "", filter_key: str | None = None) -> list[str]:
    """Demo names in index order: all of them, or those of ``mask/<filter_key>`` (e.g. "20_percent")."""
    names = demo_names(file["data"])
    if not names:
        raise RobomimicFileError(f"{path}: data has no demo_* groups")
    if filter_key is None:
        return names
    chosen = set(_mask_members(file, filter_key, path, names))
    return [name for name in names if name in chosen]


def _mask_members(file: h5py.File, key: str, path: str | Path, names: list[str]) -> list[str]:
    if "mask" not in file or key not in file["mask"]:
        available = sorted(file["mask"]) if "mask" in file else []
        raise RobomimicFileError(f"{path}: filter_key={key!r} but there is no mask/{key} "
                                 f"(available: {available}); set filter_key=null")
    members = [n.decode() if isinstance(n, bytes) else str(n) for n in file["mask"][key][:]]
    unknown = sorted(set(members) - set(names))
    if unknown:
        raise RobomimicFileError(f"{path}: mask/{key} names demos that do not exist: {unknown[:5]}")
    return members


def validate_file(file: h5py.File, path: str | Path = "", obs_keys: tuple[str, ...] = ()) -> list[str]:
    """Check the whole layout (every demo, ``total``, every mask); returns the demo names."""
    read_env_args(file, path)
    names = select_demos(file, path)
    total = sum(validate_demo(file["data"][name], f"{path}:data/{name}", obs_keys) for name in names)
    if "total" in file["data"].attrs and int(file["data"].attrs["total"]) != total:
        raise RobomimicFileError(
            f"{path}: data.attrs['total']={int(file['data'].attrs['total'])} but the demos "
            f"hold {total} samples"
        )
    for key in file.get("mask", {}):
        _mask_members(file, key, path, names)
    return names


def validate_demo(demo: h5py.Group, where: str, obs_keys: tuple[str, ...] = (),
                  action_key: str = "actions") -> int:
    """Check that a demo has ``action_key`` and the observations asked for, all of one length (and its
    ``num_samples`` agrees); returns that length."""
    if action_key not in demo:
        raise RobomimicFileError(f"{where}: missing dataset '{action_key}' (has {sorted(demo)})")
    length = demo[action_key].shape[0]
    if length == 0:
        raise RobomimicFileError(f"{where}: '{action_key}' is empty")
    if "num_samples" not in demo.attrs:
        raise RobomimicFileError(f"{where}: missing attribute 'num_samples' (expected {length})")
    if int(demo.attrs["num_samples"]) != length:
        raise RobomimicFileError(
            f"{where}: num_samples={int(demo.attrs['num_samples'])} but {action_key} has {length} rows"
        )
    for key in ("states", "rewards", "dones"):
        if key in demo and demo[key].shape[0] != length:
            raise RobomimicFileError(
                f"{where}: {key} has {demo[key].shape[0]} rows but {action_key} has {length}"
            )
    available = sorted(demo["obs"]) if "obs" in demo else []
    for key in obs_keys:
        if key not in available:
            hint = (" (render them with python -m drifting_policy.collect.robomimic_images FILE)"
                    if key.endswith("_image") else "")
            raise RobomimicFileError(f"{where}: missing observation 'obs/{key}'; available {available}{hint}")
        if demo["obs"][key].shape[0] != length:
            raise RobomimicFileError(
                f"{where}: obs/{key} has {demo['obs'][key].shape[0]} rows but {action_key} has {length}"
            )
    return length


def read_episode(file: h5py.File, name: str) -> Episode:
    demo = file["data"][name]
    extras = {
        k: demo[k][:] for k in demo if isinstance(demo[k], h5py.Dataset) and k not in REQUIRED_DEMO_KEYS
    }
    return Episode(
        states=demo["states"][:],
        actions=demo["actions"][:],
        rewards=demo["rewards"][:],
        dones=demo["dones"][:],
        obs={k: v[:] for k, v in demo["obs"].items()},
        next_obs={k: v[:] for k, v in demo["next_obs"].items()},
        model_file=str(demo.attrs.get("model_file", "")),
        extras=extras,
        attrs={k: v for k, v in demo.attrs.items() if k not in ("num_samples", "model_file")},
    )

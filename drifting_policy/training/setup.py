"""What `drifting-train` builds from a plain config dict: datasets, normaliser, runners, checks, the run.

`run_training(cfg)` does the work from a plain dict (configs/train.yaml composed with its groups), so tests,
scripts and the demo need no hydra.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from drifting_policy.common.entry import dataclass_defaults, set_threads
from drifting_policy.common.run_folder import RunFolderGuard, check_run_folder
from drifting_policy.evaluation.runner import EnvRunner, RunnerConfig
from drifting_policy.training.checkpoint import read_metadata
from drifting_policy.training.trainer import PolicySpec, TrainConfig, Trainer

# task.dataset.type -> (the config field holding the data path, how to make the file when it is missing)
DATASET_TYPES = {
    "pusht": ("zarr_path", "drifting-collect task=pusht out={path}"),
    "lowdim_zarr": ("zarr_path", "drifting-collect task=<task> out={path}"),  # e.g. task=blockpush
    "robomimic": ("hdf5_path", "drifting-collect task=<lift|can> out={path}"),
    "lerobot": ("root", "drifting-collect task=pusht format=lerobot out={path}"),
}


def build_datasets(task: Mapping[str, Any], policy_options: Mapping[str, Any]):
    """(train, val or None) datasets of raw windows with the policy's horizons (dataset types in
    DATASET_TYPES: Push-T zarr, low-dim zarr (block pushing), robomimic hdf5, local LeRobot folder)."""
    dataset = dict(task["dataset"])
    kind = dataset.pop("type")
    horizons = {key: policy_options[key] for key in ("obs_horizon", "action_horizon", "prediction_horizon")
                if key in policy_options}
    if kind not in DATASET_TYPES:
        raise ValueError(f"task.dataset.type={kind!r}: expected one of {sorted(DATASET_TYPES)} (add other "
                         f"dataset types to drifting_policy/training/setup.py build_datasets)")
    path_key, collect_hint = DATASET_TYPES[kind]
    if kind == "lerobot":  # a hub repo id is refused before anything else: nothing is downloaded
        from drifting_policy.data.lerobot_format import check_local_root

        check_local_root(dataset[path_key])
    path = Path(dataset[path_key])
    if not path.exists():
        hint = dataset.pop("collect_hint", None) or collect_hint.format(path=path)
        raise FileNotFoundError(f"task.dataset.{path_key}={path} does not exist; collect it first: {hint}")
    dataset.pop("collect_hint", None)
    if kind == "pusht":
        from drifting_policy.data import PushTDataset as dataset_class
    elif kind == "lowdim_zarr":
        from drifting_policy.data import LowDimZarrDataset as dataset_class
    elif kind == "lerobot":
        from drifting_policy.data import LeRobotFolderDataset as dataset_class
        dataset["shape_meta"] = task["shape_meta"]  # low-dim features are reshaped to the task's shapes
    else:
        from drifting_policy.data import RobomimicDataset as dataset_class
        dataset["obs_keys"] = tuple(dataset["obs_keys"])
    train = dataset_class(**dataset, **horizons, split="train")
    val = train.get_validation_dataset() if dataset.get("val_ratio", 0) > 0 else None
    k = int(policy_options.get("extra_positives_k", 0) or 0)
    if k > 0:  # the drifting policy's extra positives: chunks of other demonstrations in nearby states
        from drifting_policy.data.neighbours import NeighbourPositives
        from drifting_policy.policy.drifting import NEIGHBOUR_ACTION_KEY

        radius = float(policy_options.get("extra_positives_radius", 1.0))
        train, val = (None if part is None else NeighbourPositives(part, k, radius, NEIGHBOUR_ACTION_KEY)
                      for part in (train, val))
        print(f"extra positives: {train.summary()}")
    return train, val


def dataset_info(task: Mapping[str, Any], train_set, val_set) -> dict[str, Any]:
    """What the run trained on (stored in config.yaml and every checkpoint): the store's provenance
    attributes and the split sizes, so results on different collections are never mixed up silently."""
    keep = ("expert_version", "source_sha256", "date", "kept", "steps", "noise_std", "seed", "n_seeds")
    if task["dataset"]["type"] == "robomimic":
        import h5py

        with h5py.File(task["dataset"]["hdf5_path"], "r") as file:
            attrs = {key: _plain(value) for key, value in file["data"].attrs.items()}
        keep += ("expert", "total", "succeeded")
        episodes = len(train_set.demo_names)
    elif task["dataset"]["type"] == "lerobot":  # our exports keep the source store's attributes
        attrs, episodes = train_set.data.provenance, len(train_set.episode_ids)
    else:
        from drifting_policy.data import ReplayBuffer

        attrs = ReplayBuffer.open(task["dataset"]["zarr_path"]).attrs
        episodes = len(train_set.episode_ids)
    return {"store": {key: attrs[key] for key in keep if key in attrs},
            "train_windows": len(train_set), "val_windows": len(val_set) if val_set is not None else 0,
            "train_episodes": episodes}


def _plain(value: Any) -> Any:
    """An hdf5 attribute as a YAML-friendly Python value (numpy scalars and bytes are not)."""
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if hasattr(value, "item") else value


def fit_normalizer(train_dataset, shape_meta: Mapping[str, Any]):
    from drifting_policy.policy.normalizer import Normalizer

    image_keys = [key for key, spec in shape_meta["obs"].items() if spec["type"] == "rgb"]
    # a dataset may keep some dims unnormalised (robomimic's absolute-action rotation); others have none
    identity_dims = getattr(train_dataset, "normalizer_identity_dims", None)
    return Normalizer().fit(train_dataset.normalizer_data(), image_keys=image_keys,
                            identity_dims=identity_dims)


def build_runners(task: Mapping[str, Any], policy_options: Mapping[str, Any],
                  train_seeds: bool = False) -> dict[str, EnvRunner]:
    """{"eval/": test-seed runner} (+ {"train/": runner on the task's train seeds} when asked)."""
    base = {**task["runner"], "obs_horizon": policy_options.get("obs_horizon", 2),
            "action_horizon": policy_options.get("action_horizon", 8)}
    runners = {"eval/": EnvRunner(RunnerConfig(**base, prefix="eval/"))}
    if train_seeds:
        seeds = task["train_seeds"]
        runners["train/"] = EnvRunner(RunnerConfig(**{**base, **seeds, "n_videos": 0}, prefix="train/"))
    return runners


def check_test_seeds_unseen(runner: RunnerConfig, store: Mapping[str, Any]) -> None:
    """Evaluation seeds must not be seeds the demonstrations were collected on (when the store says)."""
    if "seed" not in store or "n_seeds" not in store:
        return  # a store from elsewhere (e.g. Diffusion Policy's own zarr) does not record its seeds
    collected = range(int(store["seed"]), int(store["seed"]) + int(store["n_seeds"]))
    overlap = sorted(set(runner.seeds) & set(collected))
    if overlap:
        raise ValueError(f"task.runner seeds {runner.seeds[0]}..{runner.seeds[-1]} include seeds the "
                         f"demonstrations were collected on ({collected.start}..{collected.stop - 1}), e.g. "
                         f"{overlap[:3]}; use unseen seeds (Diffusion Policy's test seeds start at 100000)")


def check_shape_meta(expected: Mapping[str, Any], got: Mapping[str, Any]) -> None:
    def normalised(meta):
        return json.loads(json.dumps(meta, default=list))

    if normalised(expected) != normalised(got):
        raise ValueError(f"task.shape_meta={normalised(expected)} but the dataset yields {normalised(got)}; "
                         f"fix the task config (or the dataset's obs_type)")


def run_training(cfg: Mapping[str, Any]) -> dict[str, float]:
    """Train the configured policy; returns the last metrics (train/, val/, eval/)."""
    from drifting_policy.policy import POLICIES, build_policy

    cfg = dict(cfg)
    known = {field.name for field in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(cfg["train"]) - known)
    if unknown:
        raise ValueError(f"unknown train.* fields {unknown}; TrainConfig has {sorted(known)}")
    train_cfg = TrainConfig(**{**cfg["train"], "seed": cfg["seed"]})
    set_threads(train_cfg.num_threads)
    options = {key: value for key, value in cfg["policy"].items() if key != "name"}
    name = cfg["policy"]["name"]
    train_set, val_set = build_datasets(cfg["task"], options)
    shape_meta = train_set.shape_meta
    check_shape_meta(cfg["task"]["shape_meta"], shape_meta)
    torch.manual_seed(cfg["seed"])  # initial weights
    policy = build_policy(name, options, shape_meta)
    policy.set_normalizer(fit_normalizer(train_set, shape_meta))
    runners = build_runners(cfg["task"], options, bool(cfg.get("eval_train_seeds", False)))
    cfg["dataset_info"] = dataset_info(cfg["task"], train_set, val_set)
    check_test_seeds_unseen(runners["eval/"].config, cfg["dataset_info"]["store"])
    run_dir = Path(cfg["run_dir"])
    latest = run_dir / "checkpoints" / "latest.safetensors"
    stored = read_metadata(latest) if latest.exists() else {}
    defaults = {"train": dataclass_defaults(TrainConfig),  # settings newer than a stored run's config
                "policy": dataclass_defaults(POLICIES[name].config_class)}
    check_run_folder(run_dir, latest, train_cfg.resume, stored.get("config"), cfg,
                     describe=f"a {stored['policy_name']} policy" if stored else "", defaults=defaults)
    n_params = sum(p.numel() for p in policy.parameters())
    with RunFolderGuard(run_dir, latest):  # a run that fails before its first checkpoint leaves no folder
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
        trainer = Trainer(policy, train_set, train_cfg, run_dir, PolicySpec(name, options, shape_meta),
                          val_dataset=val_set, runners=runners, run_config=cfg,
                          wandb_options=cfg.get("wandb"))
        print(f"{name}: {n_params / 1e6:.2f}M parameters, {len(train_set)} train windows, run_dir={run_dir}, "
              f"{torch.get_num_threads()} thread(s), {trainer.precision}")  # "auto" resolved by the trainer
        return trainer.fit()


def register_train_defaults() -> None:
    """Make TrainConfig's defaults hydra's `train_defaults` node, under the `train/*.yaml` files: the YAML
    lists only what it changes, and every field stays overridable (`train.max_minutes=10`)."""
    from hydra.core.config_store import ConfigStore

    defaults = dataclass_defaults(TrainConfig)
    del defaults["seed"]  # the run's top-level `seed` is the one training uses
    ConfigStore.instance().store(name="train_defaults", node=defaults)

"""1-step smoke of drifting-train task=lerobot: configs/task/lerobot.yaml trains and evaluates an export."""

from lerobot_fakes import write_pusht_zarr
from training_fakes import TINY_RUNNER, compose_config

from drifting_policy.data.lerobot_export import export
from drifting_policy.training.checkpoint import load_checkpoint
from drifting_policy.training.setup import run_training


def test_task_lerobot_trains_on_an_exported_folder(tmp_path):
    store = write_pusht_zarr(tmp_path / "pusht.zarr", image=False)
    root = export(store, tmp_path / "lerobot", progress=False)
    overrides = ["task=lerobot", "policy=drifting", f"task.dataset.root={root}",
                 f"run_dir={tmp_path / 'run'}",
                 "task.dataset.val_ratio=0.34", "train.max_steps=2", "train.batch_size=8",
                 "train.log_every=1", "train.warmup_steps=1", "train.eval_every=null", "train.progress=false",
                 "policy.mlp_width=32", "policy.mlp_depth=1", *TINY_RUNNER]
    metrics = run_training(compose_config("train", overrides))
    assert {"train/loss", "val/loss", "eval/mean_score"} <= set(metrics)
    config = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest").config
    assert config["task"]["name"] == "lerobot" and config["dataset_info"]["train_episodes"] == 2
    assert config["dataset_info"]["store"]["expert_version"] == "test"  # the zarr's attributes, carried over

"""The run-folder rule on drifting-train: refuse, never overwrite; resume only under the stored settings."""

from __future__ import annotations

import hashlib

import pytest
from training_fakes import compose_config, train_overrides, write_tiny_pusht_store

from drifting_policy.common.run_folder import config_differences
from drifting_policy.training.setup import run_training

NO_EVAL = ["train.eval_at_end=false"]


def folder_digest(run_dir) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    store = write_tiny_pusht_store(tmp_path_factory.mktemp("data") / "tiny.zarr")
    run_dir = tmp_path_factory.mktemp("runs") / "drifting"
    run_training(compose_config("train", [*train_overrides(store, run_dir, "drifting"), *NO_EVAL]))
    return store, run_dir


@pytest.mark.parametrize("extra, error, words", [
    (["train.resume=false"], FileExistsError, ["holds a run (a drifting policy)", "train.resume=true"]),
    (["seed=7", "train.lr=0.5"], ValueError, ["seed: 0 -> 7", "train.lr: 0.001 -> 0.5", "new run_dir"]),
    (["policy=diffusion"], ValueError, ["(a drifting policy)", "policy.name: 'drifting' -> 'diffusion'"]),
])
def test_refused_starts_name_the_folder_and_change_nothing(finished_run, extra, error, words):
    store, run_dir = finished_run
    before = folder_digest(run_dir)
    overrides = [*train_overrides(store, run_dir, "drifting"), *NO_EVAL, *extra]
    if "policy=diffusion" in extra:
        overrides.remove("policy=drifting")
    with pytest.raises(error) as refused:
        run_training(compose_config("train", overrides))
    message = str(refused.value)
    assert str(run_dir) in message and all(word in message for word in words), message
    assert folder_digest(run_dir) == before  # config.yaml, metrics and checkpoints untouched


def test_a_longer_budget_resumes_the_same_run(finished_run):
    store, run_dir = finished_run
    metrics = run_training(compose_config("train", [*train_overrides(store, run_dir, "drifting"), *NO_EVAL,
                                                    "train.max_steps=3"]))
    steps = [row for row in (run_dir / "metrics.jsonl").read_text().splitlines() if '"train/loss"' in row]
    assert len(steps) == 3 and metrics["train/samples_seen"] == 3 * 8


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path):
    store = write_tiny_pusht_store(tmp_path / "tiny.zarr")
    run_dir = tmp_path / "runs" / "exploding"
    overrides = [*train_overrides(store, run_dir, "drifting"), *NO_EVAL, "train.lr=1e20",
                 "train.grad_clip=null", "train.max_steps=50", "train.checkpoint_every=1000"]
    with pytest.raises(RuntimeError, match="non-finite"):
        run_training(compose_config("train", overrides))
    assert not run_dir.exists()


def test_config_differences_ignore_the_allow_list():
    stored = {"seed": 0, "train": {"max_steps": 10, "lr": 1e-3, "betas": [0.9, 0.99]}, "wandb": {"mode": "x"}}
    new = {"seed": 0, "train": {"max_steps": 99, "lr": 1e-3, "betas": (0.9, 0.99)}, "wandb": {"mode": "y"}}
    assert config_differences(stored, new) == []
    assert config_differences(stored, {**new, "extra": 1}) == ["extra: '<absent>' -> 1"]


def test_a_setting_newer_than_the_stored_run_counts_at_its_default():
    """A run started before a setting existed resumes when the setting keeps its default, and is refused when
    the new run sets it otherwise (the stored run implicitly had the default)."""
    stored = {"policy": {"name": "drifting", "samples_per_obs": 8}}
    defaults = {"policy": {"samples_per_obs": 8, "noise_cond_dim": 0}, "train": {"seed": 0}}
    new = {"policy": {"name": "drifting", "samples_per_obs": 8, "noise_cond_dim": 0}}
    assert config_differences(stored, new, defaults=defaults) == []
    changed = {"policy": {**new["policy"], "noise_cond_dim": 32}}
    assert config_differences(stored, changed, defaults=defaults) == ["policy.noise_cond_dim: 0 -> 32"]
    assert config_differences(stored, new) == ["policy.noise_cond_dim: '<absent>' -> 0"]  # no defaults known


def test_a_run_stored_without_a_new_policy_field_resumes(finished_run):
    """The real entry point: drop a field from the stored config.yaml's policy (as an older version wrote it);
    resuming with every setting as before still works."""
    store, run_dir = finished_run
    from drifting_policy.training.checkpoint import load_checkpoint, save_checkpoint

    latest = run_dir / "checkpoints" / "latest.safetensors"
    ckpt = load_checkpoint(latest)
    del ckpt.config["policy"]["noise_cond_dim"]
    save_checkpoint(latest, ckpt)
    run_training(compose_config("train", [*train_overrides(store, run_dir, "drifting"), *NO_EVAL]))

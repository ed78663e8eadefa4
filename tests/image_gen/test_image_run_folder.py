"""The run-folder rule on the image trainer (every objective): refuse, never overwrite; resume only under the
stored settings; a finished run is left as it is; a non-finite step stops the run, keeping the last good
checkpoint."""

from __future__ import annotations

import hashlib
import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file
from tiny_configs import tiny_train_config

from image_gen.objectives.flow import FlowTrainConfig
from image_gen.objectives.mae import MAETrainConfig
from image_gen.training.trainer import NonFiniteLossError, train


def folder_digest(folder) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, fake_root, mae_path):
    out_dir = tmp_path_factory.mktemp("runs")
    train(tiny_config(out_dir, fake_root, mae_path, max_steps=2))
    return out_dir


def tiny_config(out_dir, fake_root, mae_path, **overrides):
    return tiny_train_config(str(out_dir), str(fake_root), mae_path, progress=False, **overrides)


def tiny_mae(out_dir, fake_root, **overrides) -> MAETrainConfig:
    base = dict(out_dir=str(out_dir), data_root=str(fake_root), run_name="run", max_steps=1, batch_size=8,
                mae={"width": 4, "blocks": [1, 1]}, progress=False)
    return MAETrainConfig(**{**base, **overrides})


@pytest.mark.parametrize("extra, error, words", [
    ({"resume": False}, FileExistsError,
     ["already holds a run (objective=drifting, step 2)", "new run_name", "(resume=true)"]),
    ({"seed": 7, "lr": 0.5}, ValueError, ["seed: 0 -> 7", "lr: 0.001 -> 0.5", "new run_name"]),
    ({"objective": "flow"}, ValueError, ["(objective=drifting, step 2)", "objective: 'drifting' -> 'flow'"]),
])
def test_refused_starts_name_the_folder_and_change_nothing(finished_run, fake_root, mae_path, extra, error,
                                                           words):
    before = folder_digest(finished_run)
    if extra.get("objective") == "flow":  # another objective's run pointed at the same folder
        config = FlowTrainConfig(out_dir=str(finished_run), run_name="run", data_root=str(fake_root),
                                 batch_size=8, model={"size": "DiT-T/4"}, progress=False)
    else:
        config = tiny_config(finished_run, fake_root, mae_path, max_steps=2, **extra)
    with pytest.raises(error) as refused:
        train(config)
    message = str(refused.value)
    assert str(finished_run / "run") in message and all(word in message for word in words), message
    assert folder_digest(finished_run) == before  # config.yaml, metrics, model and train state untouched


def test_resuming_a_finished_run_is_a_no_op_and_a_longer_budget_continues(finished_run, fake_root, mae_path,
                                                                          tmp_path, capsys):
    out_dir = tmp_path / "copy"
    shutil.copytree(finished_run, out_dir)
    before = folder_digest(out_dir)
    again = train(tiny_config(out_dir, fake_root, mae_path, max_steps=2, log_every=5, num_threads=2))
    assert again.step == 2 and folder_digest(out_dir) == before
    assert "already trained to step 2" in capsys.readouterr().out
    longer = train(tiny_config(out_dir, fake_root, mae_path, max_steps=3, checkpoint_every=1))
    assert longer.step == 3
    rows = [json.loads(line) for line in (out_dir / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]


def test_every_objective_follows_the_rule(tmp_path, fake_root):
    """The MAE (an encoder objective, export at the end) too: resume=false on its folder is refused, and a
    folder holding files but no checkpoint is refused before anything is written."""
    train(tiny_mae(tmp_path, fake_root))
    before = folder_digest(tmp_path / "run")
    with pytest.raises(FileExistsError, match=r"holds a run \(objective=mae, step 1\)"):
        train(tiny_mae(tmp_path, fake_root, resume=False))
    assert folder_digest(tmp_path / "run") == before
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds \['notes.txt'\] but no checkpoint"):
        train(tiny_mae(tmp_path, fake_root, run_name="stray"))
    assert folder_digest(stray) == {"notes.txt": hashlib.sha256(b"mine").hexdigest()}


def test_a_damaged_train_state_is_one_line_naming_the_file(finished_run, fake_root, mae_path, tmp_path):
    out_dir = tmp_path / "copy"
    shutil.copytree(finished_run, out_dir)
    state = out_dir / "run" / "train_state.safetensors"
    state.write_bytes(state.read_bytes()[:100])  # torn by hand: a crash cannot do this (atomic writes)
    with pytest.raises(ValueError, match="not a readable safetensors file") as refused:
        train(tiny_config(out_dir, fake_root, mae_path, max_steps=3))
    assert str(state) in str(refused.value)


def test_a_diverging_run_stops_before_the_update_and_keeps_only_finite_files(tmp_path, fake_root, mae_path):
    config = tiny_config(tmp_path, fake_root, mae_path, lr=1e20, grad_clip=None, warmup_steps=0, max_steps=20,
                         checkpoint_every=1)
    with pytest.raises(NonFiniteLossError) as stopped:
        train(config)
    message = str(stopped.value)
    state = tmp_path / "run" / "train_state.safetensors"
    assert "non-finite" in message and f"last good checkpoint is {state} (step " in message, message
    assert "Lower lr (now 1e+20)" in message and "grad_clip" in message
    assert isinstance(stopped.value, ValueError)  # so console scripts report it in one line (exit 2)
    files = sorted((tmp_path / "run").glob("*.safetensors"))
    assert [p.name for p in files] == ["model.safetensors", "train_state.safetensors"]
    for path in files:
        bad = [name for name, tensor in load_file(str(path)).items()
               if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
        assert not bad, f"{path.name} holds non-finite tensors {bad[:5]}"
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(math.isfinite(v) for row in rows for v in row.values())

    fresh = tmp_path / "fresh"  # diverging before its first checkpoint: no folder is left behind
    with pytest.raises(NonFiniteLossError, match="no checkpoint of .* was written yet"):
        train(tiny_config(fresh, fake_root, mae_path, lr=1e20, grad_clip=None, warmup_steps=0, max_steps=20))
    assert not (fresh / "run").exists()


def test_a_setting_newer_than_the_stored_run_counts_at_its_default(finished_run, fake_root, mae_path,
                                                                   monkeypatch):
    """A train state written before a setting existed (here: its stored config lacks `lr`) resumes when the
    setting keeps its default, and is refused, naming the default, when the new run changes it."""
    from image_gen import run_folder
    from image_gen.training import state

    real = state.read_state_metadata

    def without_lr(path):
        meta = real(path)
        return {**meta, "config": {k: v for k, v in meta["config"].items() if k != "lr"}}

    monkeypatch.setattr(state, "read_state_metadata", without_lr)
    assert run_folder.check_image_run_folder(tiny_config(finished_run, fake_root, mae_path, max_steps=2))
    with pytest.raises(ValueError, match="lr: 0.001 -> 0.5"):
        run_folder.check_image_run_folder(tiny_config(finished_run, fake_root, mae_path, max_steps=2, lr=0.5))

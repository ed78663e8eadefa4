"""The one image trainer behind every training console script: hydra configs select the objective, the
scripts run, and the objectives new to the shared loop (flow accumulation, evaluator resume) hold up."""

import json
import shutil
import sys

import pytest
import torch
from safetensors.torch import load_file

import image_gen.training.trainer as trainer_module
from image_gen.models.classifier import ClassifierConfig
from image_gen.objectives import OBJECTIVES, config_class
from image_gen.objectives.evaluator import EvaluatorTrainConfig
from image_gen.objectives.flow import FlowTrainConfig
from image_gen.train import main_mae
from image_gen.training.hydra_config import CONFIG_DIR, compose_train_config
from image_gen.training.trainer import train

TRAINING_CONFIGS = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if not p.name.startswith("imagenet_"))


@pytest.mark.parametrize("name", TRAINING_CONFIGS)
def test_every_training_yaml_builds_its_objectives_config(name):
    config = compose_train_config(name)
    assert config.objective in OBJECTIVES and isinstance(config, config_class(config.objective))
    assert config.run_name and config.max_steps != 0


def test_objective_override_switches_a_neutral_config_and_refuses_foreign_fields():
    assert type(compose_train_config("evaluator", ["objective=mae", "~epochs"])).__name__ == "MAETrainConfig"
    with pytest.raises(ValueError, match=r"\['epochs'\] are not fields of objective='mae'"):
        compose_train_config("evaluator", ["objective=mae"])


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="max_steps=0"):
        FlowTrainConfig(max_steps=0)
    with pytest.raises(ValueError, match="lr_schedule='linear'"):
        FlowTrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="set max_steps=null and choose epochs"):
        EvaluatorTrainConfig(max_steps=10)


def test_mae_console_script_trains_and_exports(tmp_path, fake_root, monkeypatch, capsys):
    args = [f"data_root={fake_root}", f"out_dir={tmp_path}", "run_name=m", "max_steps=2", "batch_size=8",
            "mae.width=4", "mae.blocks=[1,1]", "limit_per_class=null", "log_every=1", "progress=false",
            f"hydra.run.dir={tmp_path}/hydra"]
    monkeypatch.setattr(sys, "argv", ["image-gen-train-mae", *args])
    main_mae()
    assert (tmp_path / "m" / "mae.safetensors").is_file() and "MAE saved" in capsys.readouterr().out
    rows = [json.loads(line) for line in (tmp_path / "m" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 2] and "val/masked_mse" in rows[-1]  # 1-based; result row


def tiny_flow(tmp_path, fake_root, **overrides) -> FlowTrainConfig:
    base = dict(out_dir=str(tmp_path), data_root=str(fake_root), device="cpu", batch_size=8, max_steps=2,
                model={"size": "DiT-T/4", "num_in_context": 2, "num_style_tokens": 0}, sample_every=100,
                progress=False)
    return FlowTrainConfig(**{**base, **overrides})


def test_flow_grad_accum_equals_one_batch(tmp_path, fake_root):
    """Micro-batch losses are weighted by their share of the batch: 2 micro-batches == 1 (float order)."""
    one = train(tiny_flow(tmp_path, fake_root, run_name="one"))
    two = train(tiny_flow(tmp_path, fake_root, run_name="two", grad_accum=2))
    for a, b in zip(one.model.parameters(), two.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_evaluator_resume_is_exact(tmp_path, fake_root, monkeypatch):
    """Stop after step 2 of 6 (2 epochs x 3 batches), resume: the same weights as straight through, so the
    epoch permutation and the dropout stream were restored."""
    original = trainer_module.save_train_state

    def save_and_keep(state, path):
        original(state, path)
        if state[1]["step"] == 2:
            shutil.copy(path, tmp_path / "step2.safetensors")

    monkeypatch.setattr(trainer_module, "save_train_state", save_and_keep)
    common = dict(out_dir=str(tmp_path), data_root=str(fake_root), device="cpu", epochs=2, batch_size=64,
                  model=ClassifierConfig(width=4, feature_dim=16), progress=False)
    straight = train(EvaluatorTrainConfig(run_name="a", checkpoint_every=2, **common))
    assert straight.step == 6
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "step2.safetensors", tmp_path / "b" / "train_state.safetensors")
    train(EvaluatorTrainConfig(run_name="b", **common))
    a, b = (load_file(str(tmp_path / run / "evaluator.safetensors")) for run in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

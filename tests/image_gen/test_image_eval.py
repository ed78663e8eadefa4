"""Entry points end to end on synthetic data: evaluator training, image-gen-eval JSON, image-gen-sample."""

import json

import pytest
import torch
from tiny_configs import tiny_train_config

from image_gen.evaluate import main as eval_main
from image_gen.models.classifier import ClassifierConfig
from image_gen.sample import main as sample_main
from image_gen.train import TrainConfig, train
from image_gen.train_evaluator import EvaluatorTrainConfig, load_evaluator, train_evaluator

REQUIRED = {
    "fd",
    "kid",
    "precision",
    "recall",
    "class_accuracy",
    "n_samples",
    "cfg_alpha",
    "evaluator_hash",
    "encoder",
    "calibration",
}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, fake_root):
    tmp = tmp_path_factory.mktemp("eval")
    evaluator = tmp / "evaluator.safetensors"
    train_evaluator(
        EvaluatorTrainConfig(
            out=str(evaluator),
            model=ClassifierConfig(width=4, feature_dim=16),
            data_root=str(fake_root),
            epochs=1,
            batch_size=64,
            device="cpu",
        )
    )
    config = tiny_train_config(str(tmp), str(fake_root), None, run_name="gen", features={"kinds": ["global"]},
                               model={"size": "DiT-T/4", "num_style_tokens": 4}, steps=2,
                               warmup_steps=TrainConfig.warmup_steps, log_every=TrainConfig.log_every)
    train(config)
    return evaluator, tmp / "gen" / "model.safetensors"


def test_evaluator_file_records_accuracy_and_hash(artifacts):
    _, meta = load_evaluator(artifacts[0])
    assert 0.0 <= meta["test_accuracy"] <= 1.0 and len(meta["hash"]) == 12


def test_eval_prints_the_result_json_last(artifacts, fake_root, capsys):
    evaluator, checkpoint = artifacts
    eval_main(
        [
            "--checkpoint",
            str(checkpoint),
            "--evaluator",
            str(evaluator),
            "--n-samples",
            "40",
            "--calibrate",
            "--data-root",
            str(fake_root),
            "--device",
            "cpu",
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert "Inception FID skipped" in lines[0]
    result = json.loads(lines[-1])
    assert REQUIRED <= set(result) and result["n_samples"] == 40 and result["inception_fid"] is None
    copies = result["calibration"]["train_copies"]
    assert copies["nn_train_dist"] == 0.0 and result["calibration"]["train_split_floor"]["nn_train_dist"] > 0
    assert result["calibration"]["class_mean_image"]["recall"] <= copies["recall"]


def test_sample_writes_a_grid(artifacts, tmp_path):
    out = tmp_path / "grid.png"
    sample_main(
        [
            "--checkpoint",
            str(artifacts[1]),
            "--alphas",
            "1",
            "2",
            "--per-class",
            "2",
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    from PIL import Image

    width, height = Image.open(out).size
    assert (width, height) == (2 * 33 + 1, 2 * 10 * 33 + 1)  # 2 per row, 10 classes x 2 alphas, 1 px padding


def test_ema_warmup_follows_the_model_early():
    from image_gen.utils import EMA

    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=0)  # decay min(0.999, 1/10) = 0.1
    torch.testing.assert_close(ema.model.weight, model.weight - 0.1)

"""Entry points end to end on synthetic data: evaluator training, image-gen-eval JSON, image-gen-sample."""

import json

import pytest
import torch
from tiny_configs import tiny_train_config

from image_gen.evaluate import main as eval_main
from image_gen.models.classifier import ClassifierConfig, load_evaluator
from image_gen.objectives.drifting import DriftingTrainConfig
from image_gen.objectives.evaluator import EvaluatorTrainConfig
from image_gen.sample import main as sample_main
from image_gen.training.trainer import train

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
    evaluator = tmp / "evaluator" / "evaluator.safetensors"
    train(
        EvaluatorTrainConfig(
            out_dir=str(tmp),
            run_name="evaluator",
            model=ClassifierConfig(width=4, feature_dim=16),
            data_root=str(fake_root),
            epochs=1,
            batch_size=64,
            device="cpu",
        )
    )
    config = tiny_train_config(str(tmp), str(fake_root), None, run_name="gen", features={"kinds": ["global"]},
                               model={"size": "DiT-T/4", "num_style_tokens": 4}, max_steps=2,
                               warmup_steps=DriftingTrainConfig.warmup_steps,
                               log_every=DriftingTrainConfig.log_every)
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


def test_eval_with_inception_weights_reports_inception_fid(artifacts, fake_root, tmp_path, capsys):
    """The CLI's Inception path end to end, with a tiny stand-in TorchScript detector (same interface as
    clean-fid's: uint8-range [N, 3, 299, 299] in, 2048-d features out); the real network's loader and
    features are tested in test_image_metrics.py."""

    class TinyDetector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(3 * 16, 2048)

        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            pooled = torch.nn.functional.adaptive_avg_pool2d(x / 255.0, 4)  # [N, 3, 4, 4]
            return self.proj(pooled.flatten(1)) if return_features else pooled.flatten(1)

    torch.manual_seed(0)
    path = tmp_path / "detector.pt"
    torch.jit.script(TinyDetector()).save(str(path))
    evaluator, checkpoint = artifacts
    eval_main(["--checkpoint", str(checkpoint), "--evaluator", str(evaluator), "--n-samples", "20",
               "--inception-weights", str(path), "--data-root", str(fake_root), "--device", "cpu"])
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert "Inception FID skipped" not in out
    assert isinstance(result["inception_fid"], float) and result["inception_fid"] > 0

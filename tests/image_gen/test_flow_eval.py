"""image-gen-eval --nfe: one evaluation command for drifting (1-NFE) and flow checkpoints, with timings."""

import json

import pytest
from test_sample_npz import write_checkpoint

from image_gen.evaluate import main as eval_main
from image_gen.models.classifier import ClassifierConfig
from image_gen.models.flow_dit import MODEL_KIND
from image_gen.objectives.evaluator import EvaluatorTrainConfig
from image_gen.training.trainer import train


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory, fake_root):
    out_dir = tmp_path_factory.mktemp("flow_eval")
    config = EvaluatorTrainConfig(
        out_dir=str(out_dir),
        run_name="evaluator",
        model=ClassifierConfig(width=4, feature_dim=16),
        data_root=str(fake_root),
        epochs=1,
        batch_size=64,
        device="cpu",
    )
    train(config)
    return out_dir / "evaluator" / "evaluator.safetensors"


def run(main, capsys, *args) -> dict:
    main([*args, "--n-samples", "20", "--device", "cpu"])
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_drifting_checkpoint_is_one_nfe_and_refuses_more(tmp_path, evaluator, fake_root, capsys):
    checkpoint = write_checkpoint(tmp_path / "model.safetensors")
    common = ["--checkpoint", str(checkpoint), "--evaluator", str(evaluator), "--data-root", str(fake_root)]
    plain = run(eval_main, capsys, *common)
    one = run(eval_main, capsys, *common, "--nfe", "1")
    for key in ("fd", "kid", "precision", "recall", "class_accuracy", "nn_train_dist"):
        assert one[key] == plain[key], key  # same samples, same metrics
    assert plain["model_kind"] == "drifting" and plain["nfe"] == 1 and plain["sample_seconds_per_image"] > 0
    with pytest.raises(ValueError, match="nfe=4 for the one-step drifting generator"):
        run(eval_main, capsys, *common, "--nfe", "4")


def test_flow_checkpoint_is_scored_at_the_requested_nfe(tmp_path, evaluator, fake_root, capsys):
    checkpoint = write_checkpoint(tmp_path / "model.safetensors", MODEL_KIND)
    common = ["--checkpoint", str(checkpoint), "--evaluator", str(evaluator), "--data-root", str(fake_root)]
    one = run(eval_main, capsys, *common, "--nfe", "1")
    four = run(eval_main, capsys, *common, "--nfe", "4")
    assert (one["model_kind"], one["nfe"], four["nfe"]) == (MODEL_KIND, 1, 4)
    assert one["fd"] != four["fd"]  # different step counts, different samples
    assert four["sample_seconds_per_image_per_nfe"] == pytest.approx(four["sample_seconds_per_image"] / 4)

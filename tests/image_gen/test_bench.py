"""image_gen.bench (image-gen-bench): every part of a drifting step is timed for each feature space, the flow
step runs on the same DiT and batch, and the trainer is left as it was."""

import json

import torch
from tiny_configs import latent_train_config, tiny_train_overrides

import image_gen.objectives.drifting as drifting_module
from image_gen.bench import SPLIT, bench, flow_config, main


def test_bench_times_both_feature_spaces_and_the_flow_step(tmp_path, fake_root, vae_path, latent_mae_path,
                                                           mae_path):
    torch.manual_seed(0)
    config = latent_train_config(tmp_path, fake_root, latent_mae_path, vae_path)
    field = drifting_module.feature_drift_loss
    result = bench(config, decoded_encoder=mae_path, steps=2, warmup=1)
    assert drifting_module.feature_drift_loss is field
    assert list(result["drifting"]) == ["latent", "decoded"]
    for part in result["drifting"].values():
        assert part["generator_s"] > 0 and part["encoder_s"] > 0 and part["field_s"] > 0
        assert part["backward_generator_s"] > 0  # the gradient reached the generator output
        assert 0.5 * part["step_s"] < sum(part[f"{name}_s"] for name in SPLIT) <= part["step_s"] + 1e-6
    assert result["drifting_step_s"] == result["drifting"]["latent"]["step_s"] and result["flow_step_s"] > 0


def test_flow_step_uses_the_drifting_dit_and_batch(tmp_path, fake_root, vae_path, latent_mae_path):
    config = latent_train_config(tmp_path, fake_root, latent_mae_path, vae_path, limit_per_class=5)
    flow = flow_config(config)
    assert flow.model == config.model and flow.batch_size == config.n_classes * config.n_neg
    assert (flow.space, flow.vae_path, flow.limit_per_class) == ("latent", vae_path, 5)


def test_entry_point_prints_a_table_and_a_json_last_line(tmp_path, fake_root, mae_path, capsys):
    main(["--config-name", "smoke", "--steps", "1", "--warmup", "0",
          *tiny_train_overrides(str(tmp_path), str(fake_root), mae_path)])
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert list(result["drifting"]) == ["pixel"] and result["ratio"] > 0
    assert lines[0].startswith("| CPU s per step | drifting (pixel) |")
    assert not (tmp_path / "run").exists()  # a bench writes no run folder

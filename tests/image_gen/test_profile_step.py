"""image_gen.profile_step: every part of a drifting step is timed, and the trainer is left as it was."""

import torch
from tiny_configs import tiny_train_config

import image_gen.objectives.drifting as drifting_module
from image_gen.models.mae import MAE, MAEConfig, save_mae
from image_gen.profile_step import PARTS, profile


def test_profile_times_every_part_and_restores_the_field(tmp_path, fake_root):
    torch.manual_seed(0)
    mae_path = tmp_path / "mae.safetensors"
    save_mae(MAE(MAEConfig(width=4, blocks=(1, 1))), mae_path)
    field = drifting_module.feature_drift_loss
    result = profile(tiny_train_config(str(tmp_path), str(fake_root), str(mae_path)), steps=2, warmup=1)
    assert drifting_module.feature_drift_loss is field
    assert result["generator_fwd_cpu_s"] > 0 and result["features_fwd_cpu_s"] > 0
    assert result["backward_generator_cpu_s"] > 0  # the gradient reached the generator output
    shares = sum(result[f"{part}_share"] for part in PARTS)
    assert 0.5 < shares <= 1.0 + 1e-6 and result["rest_cpu_s"] >= -1e-3

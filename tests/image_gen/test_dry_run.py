"""image-gen-dry-run: every Table 8 recipe builds, with the paper's sizes, batch and schedule."""

import pytest

from image_gen.dry_run import main
from image_gen.models.dit import DiTConfig
from image_gen.recipes.base import IMAGENET_TRAIN_IMAGES, mae_recipe_paths, recipe_paths
from image_gen.recipes.generator import EncoderSpec, RecipeConfig, count_parameters, dry_run, encoder_cost
from image_gen.recipes.mae import MAERecipe, mae_dry_run

EXPECTED = {  # file -> (size, N_c, N_pos, N_neg, N_unc, steps, lr)
    "imagenet_ablation_b2.yaml": ("DiT-B/2", 64, 64, 64, 16, 30_000, 2e-4),
    "imagenet_b2_latent.yaml": ("DiT-B/2", 128, 128, 64, 32, 200_000, 4e-4),
    "imagenet_l2_latent.yaml": ("DiT-L/2", 128, 64, 64, 32, 200_000, 4e-4),
    "imagenet_b16_pixel.yaml": ("DiT-B/16", 128, 128, 64, 32, 100_000, 2e-4),
    "imagenet_l16_pixel.yaml": ("DiT-L/16", 128, 128, 64, 32, 100_000, 4e-4),
}


def test_every_table8_column_has_a_recipe():
    assert sorted(p.name for p in recipe_paths()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_dry_runs_with_paper_values(name):
    path = next(p for p in recipe_paths() if p.name == name)
    recipe = RecipeConfig.from_yaml(path)
    size, n_c, n_pos, n_neg, n_unc, steps, lr = EXPECTED[name]
    assert (recipe.model.size, recipe.n_classes, recipe.n_pos, recipe.n_neg, recipe.n_unc) == (
        size,
        n_c,
        n_pos,
        n_neg,
        n_unc,
    )
    assert (recipe.steps, recipe.lr) == (steps, lr)
    r = dry_run(recipe, gpus=8, tflops=100.0)
    assert r["tokens"] == 256 + 16  # 256 patch tokens for both latent (p=2 on 32^2) and pixel (p=16 on 256^2)
    assert r["batch"] == n_c * n_neg
    assert r["epochs"] == pytest.approx(recipe.epochs, rel=0.05)  # steps * B / |ImageNet train| (30k: 96 ep)
    if recipe.paper_params_m is not None:
        assert r["params_m"] == pytest.approx(recipe.paper_params_m, rel=0.02)
    # GPU-hours are total FLOPs over the assumed throughput; wall-clock divides by the GPU count
    assert r["gpu_hours"] == pytest.approx(r["total_pflops"] * 1e15 / 100e12 / 3600)
    assert r["wall_hours"] == pytest.approx(r["gpu_hours"] / 8)


def test_b2_and_l2_parameter_counts_match_paper():
    latent = dict(input_size=32, in_channels=4, num_classes=1000, num_in_context=16)
    b2, _ = count_parameters(DiTConfig(size="DiT-B/2", **latent))
    l2, _ = count_parameters(DiTConfig(size="DiT-L/2", **latent))
    assert b2 == pytest.approx(133e6, rel=0.03)
    assert l2 == pytest.approx(463e6, rel=0.03)


def tiny_recipe() -> RecipeConfig:
    """A DiT-T/2 recipe on 8x8x4 inputs, 4 classes: small enough to reason about its counts."""
    return RecipeConfig(name="a", model=DiTConfig(size="DiT-T/2", input_size=8, in_channels=4), n_classes=4,
                        n_pos=4, n_neg=4, n_unc=2, steps=10)


def test_flops_scale_with_model_and_batch():
    small = tiny_recipe()
    double = RecipeConfig(name="b", model=small.model, n_classes=8, n_pos=4, n_neg=4, n_unc=2, steps=10)
    a, b = dry_run(small, gpus=1), dry_run(double, gpus=1)
    assert b["step_tflops"] == pytest.approx(2 * a["step_tflops"])
    # per-token parameters dominate: forward FLOPs >= 2 * per-token params * tokens
    _, per_token = count_parameters(small.model)
    assert a["fwd_gflops_per_image"] * 1e9 >= 2 * per_token * a["tokens"]
    assert a["epochs"] == pytest.approx(10 * 16 / IMAGENET_TRAIN_IMAGES)


def test_bad_recipe_names_field():
    with pytest.raises(ValueError, match="n_classes"):
        RecipeConfig(name="x", model=DiTConfig(num_classes=10), n_classes=64)
    with pytest.raises(ValueError, match="gpus"):
        dry_run(RecipeConfig(name="x", model=DiTConfig(num_classes=100)), gpus=0)


def test_console_prints_every_recipe(capsys):
    main(["--all", "--gpus", "64"])
    out = capsys.readouterr().out
    assert out.count("== ") == len(EXPECTED) + len(MAE_EXPECTED)
    assert "N_c=128 N_pos=64 N_neg=64 N_unc=32" in out  # L/2 latent
    assert "GPU-hours" in out and "64 GPUs" in out


MAE_EXPECTED = {  # file -> (width, in_channels, steps, paper epochs, classifier fine-tune steps)
    "imagenet_mae_w256_latent.yaml": (256, 4, 30_000, 192, 0),
    "imagenet_mae_w640_latent.yaml": (640, 4, 200_000, 1280, 3000),
    "imagenet_mae_w640_pixel.yaml": (640, 192, 200_000, 1280, 3000),
}


@pytest.mark.parametrize("name", sorted(MAE_EXPECTED))
def test_mae_recipes_dry_run_with_paper_schedule(name):
    recipe = MAERecipe.from_yaml(next(p for p in mae_recipe_paths() if p.name == name))
    width, channels, steps, epochs, finetune = MAE_EXPECTED[name]
    assert (recipe.mae.width, recipe.mae.in_channels, recipe.steps, recipe.cls_finetune_steps) == (
        width,
        channels,
        steps,
        finetune,
    )
    assert (recipe.batch_size, recipe.lr, recipe.ema_decay) == (8192, 4e-3, 0.9995)
    r = mae_dry_run(recipe, gpus=8, tflops=100.0)
    assert r["epochs"] == pytest.approx(epochs, rel=0.01)
    assert r["gpu_hours"] == pytest.approx(r["total_pflops"] * 1e15 / 100e12 / 3600)
    with pytest.raises(ValueError, match="cls_lambda_ramp_steps"):
        MAERecipe(name="x", cls_finetune_steps=10, cls_lambda_ramp_steps=100)


def test_encoder_flops_are_counted_and_grow_with_width():
    p256, f256 = encoder_cost(EncoderSpec(kind="mae", width=256))
    p512, f512 = encoder_cost(EncoderSpec(kind="mae", width=512))
    assert p512 == pytest.approx(4 * p256, rel=0.02) and f512 == pytest.approx(
        4 * f256, rel=0.02
    )  # ~ width^2
    base = tiny_recipe()
    spec = EncoderSpec(kind="mae", width=16, blocks=(1, 1), in_channels=4, input_size=8)
    with_encoder = RecipeConfig(**{**base.__dict__, "feature_encoders": (spec,)})
    a, b = dry_run(base, gpus=1), dry_run(with_encoder, gpus=1)
    fwd = encoder_cost(spec)[1]
    assert b["encoder_step_tflops"] * 1e12 == pytest.approx(fwd * (2 * 16 + 4 * 4 + 2))  # 2x generated + real
    assert b["total_pflops"] > a["total_pflops"] and a["encoder_step_tflops"] == 0.0
    with pytest.raises(ValueError, match="kind='dino'"):
        EncoderSpec(kind="dino")


def test_fsdp_divides_the_training_state_by_the_gpu_count():
    l2 = RecipeConfig.from_yaml(next(p for p in recipe_paths() if p.name == "imagenet_l2_latent.yaml"))
    b2 = RecipeConfig.from_yaml(next(p for p in recipe_paths() if p.name == "imagenet_b2_latent.yaml"))
    assert l2.fsdp and not b2.fsdp
    assert dry_run(l2, gpus=8)["train_state_gib_per_gpu"] == pytest.approx(
        dry_run(l2, gpus=1)["train_state_gib_per_gpu"] / 8
    )
    assert dry_run(b2, gpus=8)["train_state_gib_per_gpu"] == dry_run(b2, gpus=1)["train_state_gib_per_gpu"]


def test_pixel_recipes_use_convnext_features():
    for name in ("imagenet_b16_pixel.yaml", "imagenet_l16_pixel.yaml"):
        recipe = RecipeConfig.from_yaml(next(p for p in recipe_paths() if p.name == name))
        assert [e.kind for e in recipe.feature_encoders] == ["mae", "convnext"]
        assert recipe.feature_encoders[1].name == "convnextv2_base"


def test_missing_recipe_file_names_the_path_and_what_it_should_be(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml not found: expected a recipe"):
        RecipeConfig.from_yaml(missing)
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml not found: expected a MAE recipe"):
        MAERecipe.from_yaml(missing)

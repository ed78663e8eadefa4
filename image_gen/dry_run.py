"""``image-gen-dry-run``: sizes, FLOPs, batch composition and GPU-hours of an ImageNet recipe (no training).

    image-gen-dry-run configs/image_gen/imagenet_b2_latent.yaml --gpus 64 --tflops 300
    image-gen-dry-run --all                      # every configs/image_gen/imagenet_*.yaml (paper Table 8)
    image-gen-dry-run configs/image_gen/imagenet_mae_w640_latent.yaml   # an MAE pre-training recipe

A tool over plain recipe files, not a training run: argparse with positional paths. The estimates are in
image_gen.recipes (generator: DiT recipes, mae: feature-encoder pre-training).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from drifting_policy.common.entry import report_user_errors
from image_gen.recipes.base import DEFAULT_TFLOPS, mae_recipe_paths, recipe_paths
from image_gen.recipes.generator import RecipeConfig, dry_run, format_report
from image_gen.recipes.mae import MAERecipe, format_mae_report, mae_dry_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="image-gen-dry-run", description=__doc__.split("\n")[0])
    parser.add_argument("configs", nargs="*", help="recipe YAML files (configs/image_gen/imagenet_*.yaml)")
    parser.add_argument("--all", action="store_true", help="every configs/image_gen/imagenet_*.yaml")
    parser.add_argument("--gpus", type=int, default=64, help="GPUs in the cluster (default 64)")
    parser.add_argument(
        "--tflops", type=float, default=DEFAULT_TFLOPS, help="assumed sustained TFLOP/s per GPU (default 200)"
    )
    return parser


@report_user_errors  # a missing or invalid recipe is one line, exit 2
def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    paths = recipe_paths() + mae_recipe_paths() if args.all else [Path(p) for p in args.configs]
    if not paths:
        parser.error("give recipe YAML paths or --all")
    for path in paths:
        if path.name.startswith("imagenet_mae_"):
            mae = MAERecipe.from_yaml(path)
            print(format_mae_report(mae, mae_dry_run(mae, args.gpus, args.tflops)))
            continue
        recipe = RecipeConfig.from_yaml(path)
        print(format_report(recipe, dry_run(recipe, args.gpus, args.tflops)))


if __name__ == "__main__":
    main()

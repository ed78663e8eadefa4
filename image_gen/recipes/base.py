"""What the ImageNet recipe dry runs share: the recipe files, the constants of the estimate, a YAML loader.

Recipes are plain YAML files (configs/image_gen/imagenet_*.yaml, not hydra training configs): the generator
recipes of the paper's Table 8 (image_gen.recipes.generator) and the MAE pre-training recipes
imagenet_mae_*.yaml (image_gen.recipes.mae).
"""

from __future__ import annotations

from pathlib import Path

import yaml

IMAGENET_TRAIN_IMAGES = 1_281_167  # ILSVRC-2012 train
DEFAULT_TFLOPS = 200.0  # assumed sustained bf16 TFLOP/s per GPU (why: image_gen.recipes.generator)
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "image_gen"
# Bytes per parameter kept per GPU in training: fp32 weights, fp32 grads, AdamW's two moments (+ 4 per EMA).
BYTES_PER_PARAM = 4 + 4 + 8


def load_yaml_dataclass(cls, path: str | Path, what: str):
    """``cls(**yaml)`` from a recipe file; a missing file names the path and ``what`` it should be."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: expected a {what}")
    return cls(**yaml.safe_load(path.read_text()))


def recipe_paths() -> list[Path]:
    """Generator recipes (Table 8 columns)."""
    return sorted(p for p in CONFIG_DIR.glob("imagenet_*.yaml") if not p.name.startswith("imagenet_mae_"))


def mae_recipe_paths() -> list[Path]:
    """Feature-encoder pre-training recipes (Table 8's encoder row)."""
    return sorted(CONFIG_DIR.glob("imagenet_mae_*.yaml"))

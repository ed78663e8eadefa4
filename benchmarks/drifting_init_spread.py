"""How spread a freshly initialised drifting policy's G samples of one observation are, per backbone.

    .venv/bin/python benchmarks/drifting_init_spread.py [--store data/pusht/pusht_scripted.zarr]

One batch of 64 Push-T windows, the drifting config's G = 8, seed 0. Printed per backbone (MLP 3x512, small
UNet, small UNet with noise_cond_dim=32, small UNet with noise_skip=0.5): the mean distance between two
samples of one observation (gen_spread), the mean distance from a sample to the demonstration
(nearest_pos_dist), and their ratio. A ratio far below 1 means the samples of an observation start nearly
identical, far from the data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml
from torch.utils.data import default_collate

from drifting_policy.policy import build_policy
from drifting_policy.training.setup import build_datasets, fit_normalizer

ROOT = Path(__file__).resolve().parents[1]
# (backbone, noise_cond_dim, noise_skip)
VARIANTS = (("mlp", 0, 0.0), ("unet", 0, 0.0), ("unet", 32, 0.0), ("unet", 0, 0.5))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(ROOT / "data" / "pusht" / "pusht_scripted.zarr"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = yaml.safe_load((ROOT / "configs" / "policy" / "drifting.yaml").read_text())["policy"]
    options = {key: value for key, value in config.items() if key != "name"}
    task = {"dataset": {"type": "pusht", "zarr_path": args.store, "obs_type": "keypoints", "val_ratio": 0.02,
                        "max_train_episodes": None, "seed": 42}}
    train, _ = build_datasets(task, options)
    batch = default_collate([train[i] for i in range(0, 64 * 300, 300)])  # 64 windows spread over the store
    normalizer = fit_normalizer(train, train.shape_meta)
    for backbone, noise_cond_dim, noise_skip in VARIANTS:
        torch.manual_seed(0)
        policy = build_policy("drifting", {**options, "backbone": backbone, "noise_cond_dim": noise_cond_dim,
                                          "noise_skip": noise_skip},
                              train.shape_meta)
        policy.set_normalizer(normalizer)
        with torch.no_grad():
            _, metrics = policy.compute_loss(batch, torch.Generator().manual_seed(0))
        spread, distance = float(metrics["gen_spread"]), float(metrics["nearest_pos_dist"])
        print(f"{backbone}, noise_cond_dim={noise_cond_dim}, noise_skip={noise_skip}: "
              f"gen_spread {spread:.3f}, nearest_pos_dist {distance:.3f}, ratio {spread / distance:.2f}")


if __name__ == "__main__":
    main()

"""Run by test_distributed.py under ``torchrun --nproc_per_node 2``: a tiny image-gen-train run.

python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_worker.py OUT_DIR DATA_ROOT MAE_PATH STEPS
"""

import json
import sys

import torch
from tiny_configs import tiny_train_config

from image_gen.distributed import cleanup, init_distributed
from image_gen.train import TrainConfig, train


def tiny_config(out_dir: str, data_root: str, mae_path: str, **overrides) -> TrainConfig:
    return tiny_train_config(out_dir, data_root, mae_path, **overrides)


def main() -> None:
    out_dir, data_root, mae_path, steps = sys.argv[1:5]
    torch.set_num_threads(1)
    info = init_distributed("gloo")
    trainer = train(tiny_config(out_dir, data_root, mae_path, steps=int(steps)), info)
    checksum = float(sum(p.double().sum() for p in trainer.model.parameters()))
    print(json.dumps({"rank": info.rank, "world_size": info.world_size, "checksum": checksum}), flush=True)
    cleanup()


if __name__ == "__main__":
    main()

"""Run by test_distributed.py under ``torchrun --nproc_per_node 2``: a tiny image-gen-train run.

python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_worker.py \\
    OUT_DIR DATA_ROOT MAE_PATH STEPS [fsdp]
"""

import json
import sys

import torch
from tiny_configs import tiny_train_config

from image_gen.distributed import cleanup, full_tensor, init_distributed
from image_gen.objectives.drifting import DriftingTrainConfig
from image_gen.training.trainer import train


def tiny_config(out_dir: str, data_root: str, mae_path: str, **overrides) -> DriftingTrainConfig:
    return tiny_train_config(out_dir, data_root, mae_path, **overrides)


def main() -> None:
    out_dir, data_root, mae_path, steps = sys.argv[1:5]
    fsdp = sys.argv[5:] == ["fsdp"]
    torch.set_num_threads(1)
    info = init_distributed("gloo")
    trainer = train(tiny_config(out_dir, data_root, mae_path, max_steps=int(steps), fsdp=fsdp), info)
    params = trainer.model.parameters()
    checksum = float(sum(p.double().sum() for p in (full_tensor(p) for p in params)))
    sharded = all(hasattr(p, "full_tensor") for p in trainer.model.parameters())  # DTensors: FSDP is on
    result = {"rank": info.rank, "world_size": info.world_size, "checksum": checksum, "sharded": sharded}
    print(json.dumps(result), flush=True)
    cleanup()


if __name__ == "__main__":
    main()

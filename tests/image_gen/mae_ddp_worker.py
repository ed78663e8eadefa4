"""Run by test_mae_ddp.py under ``torchrun --nproc_per_node 2``: a tiny MAE run (objective=mae).

python -m torch.distributed.run --standalone --nproc_per_node 2 mae_ddp_worker.py OUT_DIR DATA_ROOT STEPS
"""

import sys

import torch

from image_gen.distributed import cleanup, init_distributed
from image_gen.objectives.mae import MAETrainConfig
from image_gen.training.trainer import train


def tiny_mae_config(out_dir: str, data_root: str, **overrides) -> MAETrainConfig:
    """A width-4, two-stage MAE on batches of 8: a step takes a few milliseconds."""
    base = dict(
        run_name="mae",
        out_dir=out_dir,
        data_root=data_root,
        device="cpu",
        mae={"width": 4, "blocks": [1, 1]},
        max_steps=3,
        batch_size=8,
        warmup_steps=1,
        log_every=1,
        checkpoint_every=100,
    )
    return MAETrainConfig(**{**base, **overrides})


def main() -> None:
    out_dir, data_root, steps = sys.argv[1:4]
    torch.set_num_threads(1)
    info = init_distributed("gloo")
    train(tiny_mae_config(out_dir, data_root, max_steps=int(steps)), info)
    cleanup()


if __name__ == "__main__":
    main()

"""Run by test_distributed.py under ``torchrun --nproc_per_node 2``: a tiny image-gen-train run.

python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_worker.py OUT_DIR DATA_ROOT MAE_PATH STEPS
"""

import json
import sys

import torch

from image_gen.distributed import cleanup, init_distributed
from image_gen.train import TrainConfig, train


def tiny_config(out_dir: str, data_root: str, mae_path: str, **overrides) -> TrainConfig:
    base = dict(
        run_name="run",
        out_dir=out_dir,
        data_root=data_root,
        encoder_path=mae_path,
        device="cpu",
        model={"size": "DiT-T/4", "num_in_context": 2, "num_style_tokens": 4},
        n_classes=4,
        n_neg=4,
        n_pos=4,
        n_unc=4,
        queue_per_class=8,
        queue_global=16,
        push_per_step=16,
        warmup_steps=2,
        log_every=1,
        sample_every=100,
        checkpoint_every=100,
    )
    return TrainConfig(**{**base, **overrides})


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

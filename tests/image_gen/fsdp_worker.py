"""Run by test_fsdp.py under ``torchrun --nproc_per_node 2``: one AdamW step of a tiny DiT, DDP vs FSDP.

python -m torch.distributed.run --standalone --nproc_per_node 2 fsdp_worker.py
"""

import json

import torch

from image_gen.distributed import cleanup, init_distributed, wrap_ddp, wrap_fsdp
from image_gen.models.dit import DiT, DiTConfig


def one_step(wrap, info) -> float:
    torch.manual_seed(0)
    model = DiT(DiTConfig(size="DiT-T/4", num_in_context=2, num_style_tokens=4))
    wrapped = wrap(model, info)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(1 + info.rank)  # each rank its own data
    noise = torch.randn(4, 1, 32, 32, generator=generator)
    labels = torch.randint(10, (4,), generator=generator)
    out = wrapped(noise, labels, torch.ones(4), model.sample_style(4, generator))
    out.square().mean().backward()
    optimizer.step()
    full = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v) for k, v in model.state_dict().items()}
    return float(sum(v.double().sum() for v in full.values()))


def main() -> None:
    torch.set_num_threads(1)
    info = init_distributed("gloo")
    result = {"rank": info.rank, "ddp": one_step(wrap_ddp, info), "fsdp": one_step(wrap_fsdp, info)}
    print(json.dumps(result), flush=True)
    cleanup()


if __name__ == "__main__":
    main()

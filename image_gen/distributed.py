"""torch.distributed helpers for ``torchrun`` (DDP): init from the env vars, seeding, rank-0 I/O, reductions.

    torchrun --nproc_per_node 2 -m image_gen.train --config-name smoke      # gloo on CPU, nccl on GPUs

Without torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) everything falls back to
one process and no process group. The drift field stays local to each rank's class groups; the only
communication is DDP's gradient all-reduce (plus a scalar all-reduce for logged metrics).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank in [0, world_size), local_rank on its host, backend (None: no group)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def device(self) -> torch.device:
        """cuda:local_rank when CUDA is available, else cpu."""
        return torch.device(f"cuda:{self.local_rank}") if torch.cuda.is_available() else torch.device("cpu")

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group torchrun describes (env vars), or return a single-process :class:`DistInfo`.

    backend: None picks nccl when CUDA is available, else gloo. Sets the CUDA device to LOCAL_RANK.
    Calling it again in a process that already joined returns the same info.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not 0 <= rank < world_size:
        raise ValueError(
            f"RANK={rank}, WORLD_SIZE={world_size}; expected 0 <= RANK < WORLD_SIZE (use torchrun)"
        )
    if world_size == 1:
        return DistInfo()
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank, world_size, local_rank, dist.get_backend())


def cleanup() -> None:
    """Leave the process group (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(global_seed: int, rank: int, world_size: int) -> int:
    """Distinct, reproducible per-rank seed: global_seed * world_size + rank."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank={rank}, world_size={world_size}; expected 0 <= rank < world_size")
    return global_seed * world_size + rank


def wrap_ddp(model: nn.Module, info: DistInfo) -> nn.Module:
    """DDP wrapper (gradients all-reduced and averaged in backward) when distributed, else the model."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [info.local_rank] if next(model.parameters()).is_cuda else None
    return DistributedDataParallel(model, device_ids=device_ids)


def wrap_fsdp(model: nn.Module, info: DistInfo, unit_attr: str = "blocks") -> nn.Module:
    """FSDP2 (``torch.distributed.fsdp.fully_shard``) for the L-size models: every module in
    ``model.<unit_attr>`` (the DiT blocks) is its own shard unit, then the root; parameters become DTensors
    sharded over the ranks, gathered per unit in forward/backward. Identity in one process.

    Gradients are averaged over ranks like DDP's, so the optimizer step matches DDP up to float order. On CPU
    (gloo) this runs but is only a correctness check; the memory saving matters on GPUs. Callers that keep a
    full copy (EMA) must gather it (``model.state_dict()`` returns DTensor shards).
    """
    if not info.distributed:
        return model
    from torch.distributed.fsdp import fully_shard

    units = getattr(model, unit_attr, None)
    if units is None:
        raise ValueError(f"{type(model).__name__} has no .{unit_attr}; pass the attribute holding its blocks")
    for unit in units:
        fully_shard(unit)
    return fully_shard(model)


def full_tensor(value: Tensor) -> Tensor:
    """The whole tensor of an FSDP-sharded DTensor (a collective: every rank must call it, in the same
    order); any other tensor unchanged."""
    from torch.distributed.tensor import DTensor

    return value.full_tensor() if isinstance(value, DTensor) else value


def full_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """``module.state_dict()`` with FSDP shards gathered into full tensors (every rank must call it)."""
    return {name: full_tensor(value) for name, value in module.state_dict().items()}


def shard_like(full: Tensor, like: Tensor) -> Tensor:
    """``full`` laid out like ``like``: sharded the same way when ``like`` is a DTensor, else unchanged.

    Every rank holds the same ``full`` tensor (a resume state), so each keeps its own shard; no communication.
    """
    from torch.distributed.tensor import DTensor, distribute_tensor

    if not isinstance(like, DTensor):
        return full
    return distribute_tensor(full.to(like.device, like.dtype), like.device_mesh, like.placements)


def load_full_state_dict(module: nn.Module, state: dict[str, Tensor]) -> None:
    """Inverse of :func:`full_state_dict`: full tensors into a plain or FSDP-sharded module."""
    current = module.state_dict()
    module.load_state_dict({name: shard_like(state[name], current[name]) for name in current})


def full_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """``optimizer.state_dict()`` with sharded state tensors (AdamW moments of FSDP params) gathered."""
    state = optimizer.state_dict()
    gathered = {
        index: {key: full_tensor(v) if isinstance(v, Tensor) else v for key, v in entry.items()}
        for index, entry in state["state"].items()
    }
    return {**state, "state": gathered}


def load_full_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Inverse of :func:`full_optimizer_state`: each parameter's full state tensors sharded like the
    parameter (param indices follow ``param_groups`` order, as in ``optimizer.state_dict()``)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    sharded = {}
    for index, entry in state["state"].items():
        param = params[int(index)]
        sharded[index] = {
            key: shard_like(v, param) if isinstance(v, Tensor) and v.shape == param.shape else v
            for key, v in entry.items()
        }
    optimizer.load_state_dict({**state, "state": sharded})


def all_reduce_mean(value: Tensor, info: DistInfo) -> Tensor:
    """Mean of ``value`` over ranks (a copy; the input is untouched). Identity in one process."""
    if not info.distributed:
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def mean_metrics(metrics: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average a flat float dict over ranks (same keys on every rank), for rank-0 logging."""
    if not info.distributed:
        return metrics
    keys = list(metrics)  # same order on every rank (same code path)
    values = all_reduce_mean(torch.tensor([metrics[k] for k in keys], dtype=torch.float64), info)
    return dict(zip(keys, values.tolist(), strict=True))


def main_print(info: DistInfo, *args, **kwargs) -> None:
    """print on rank 0 only."""
    if info.is_main:
        print(*args, **kwargs)


def split_groups(num_groups: int, info: DistInfo, accum: int = 1, name: str = "n_classes") -> list[slice]:
    """This rank's ``accum`` micro-batches of class groups (or batch rows): slices of range(num_groups).

    The global step's groups are cut into world_size * accum equal chunks; rank r owns chunks
    r * accum ... r * accum + accum - 1, so (ranks x accum) with the same product see the same micro-batches.
    """
    chunks = info.world_size * accum
    if accum < 1 or num_groups % chunks:
        raise ValueError(
            f"{name}={num_groups} must split evenly into world_size * grad_accum = "
            f"{info.world_size} * {accum} micro-batches; change {name} or grad_accum"
        )
    size = num_groups // chunks
    return [slice((info.rank * accum + i) * size, (info.rank * accum + i + 1) * size) for i in range(accum)]

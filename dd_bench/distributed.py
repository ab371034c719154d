"""One network trained over several processes (``torch.distributed``: NCCL on GPUs, gloo on CPU).

Every process holds the same network (built from the same seed), draws the same batch order and
augmentation from the same generator and builds the same global batch; each then runs forward
and backward on its own contiguous shard of that batch, scaled so that the gradients summed over
the processes (one all-reduce per step) are those of the whole batch. Every process therefore
takes the same optimiser step as one process would, and the result does not depend on the
number of processes beyond float tolerance (the sums run in another order). Batch norm would see
only a shard: on CUDA it is converted to ``SyncBatchNorm``; on the CPU, where that does not
run, a network with batch norm is refused (use instance norm, the default ConvNet's).

Processes come from ``torchrun`` (``RANK``/``WORLD_SIZE`` in the environment: call
:func:`init_from_env`) or from :func:`launch`, which dd-bench's ``--nproc`` uses.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .errors import ConfigError


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def device_for_rank(device: torch.device) -> torch.device:
    """``cuda`` becomes this process's GPU (``LOCAL_RANK``); the CPU stays the CPU."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank())) % torch.cuda.device_count())
    return device


def init_from_env(device: torch.device | str = "cpu") -> bool:
    """Join the process group ``torchrun`` (or :func:`launch`) describes in the environment;
    False (nothing to do) when there is none."""
    if world_size() > 1 or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return world_size() > 1
    backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", os.environ["RANK"])) % torch.cuda.device_count())
    dist.init_process_group(backend)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // dist.get_world_size()))
    return True


def shard(n: int) -> slice:
    """This process's contiguous part of a batch of ``n`` (the first ranks take the remainder)."""
    size, r = world_size(), rank()
    base, extra = divmod(n, size)
    start = r * base + min(r, extra)
    return slice(start, start + base + (1 if r < extra else 0))


def prepare(model: nn.Module) -> nn.Module:
    """``model`` ready for sharded steps: batch norm synchronised (CUDA) or refused (CPU)."""
    if world_size() == 1:
        return model
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if not has_bn:
        return model
    if next(model.parameters()).device.type != "cuda":
        raise ConfigError(
            "data-parallel training on the CPU cannot synchronise batch norm: use a network without it"
            " (e.g. convnet, which uses instance norm) or GPUs"
        )
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def sum_gradients(model: nn.Module) -> None:
    """All-reduce (sum) every gradient, so each process holds the whole batch's."""
    if world_size() == 1:
        return
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)


def sum_counts(counts: torch.Tensor) -> torch.Tensor:
    """``counts`` (a float64 tensor) summed over every process; itself in one process."""
    if world_size() == 1:
        return counts
    t = counts.cuda() if dist.get_backend() == "nccl" else counts.cpu()
    dist.all_reduce(t)
    return t.to(counts.device)


def agree(flag: bool) -> bool:
    """The main process's ``flag``, in every process (one broadcast)."""
    if world_size() == 1:
        return flag
    t = torch.tensor([int(flag)])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.broadcast(t, 0)
    return bool(t.item())


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child(index: int, nproc: int, port: int, device: str, fn: Callable[..., Any], args: tuple) -> None:
    os.environ.update(
        RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    init_from_env(device)
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()


def launch(fn: Callable[..., Any], nproc: int, device: str, *args: Any) -> None:
    """Run ``fn(*args)`` in ``nproc`` new processes joined into one process group (the way
    ``torchrun --nproc-per-node`` would); returns when all have finished, raises if one failed."""
    if nproc < 1:
        raise ConfigError(f"nproc={nproc} is not allowed: use an integer >= 1")
    torch.multiprocessing.start_processes(
        _child, args=(nproc, free_port(), str(device), fn, args), nprocs=nproc, start_method="spawn"
    )

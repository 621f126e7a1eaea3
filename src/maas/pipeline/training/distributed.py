"""Process-group helpers for data-parallel training under `torchrun` (DDP).

`torchrun --nproc_per_node N ...` starts N processes with RANK, LOCAL_RANK and WORLD_SIZE in
their environment; `init_from_env` joins them into one process group. Without those variables
(a plain `python`/`maas` run) nothing is initialized and every helper answers as for a single
process, so callers need no special case.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any, TypeVar, cast

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

T = TypeVar("T")


def env_world_size() -> int:
    """The WORLD_SIZE torchrun exported (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def active() -> bool:
    """True inside an initialized process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes files, logs and registers."""
    return rank() == 0


def init_from_env() -> bool:
    """Join the torchrun process group when WORLD_SIZE > 1; True when this call initialized it.

    CUDA machines get one GPU per process (cuda:LOCAL_RANK) and a mixed backend: NCCL for CUDA
    tensors, Gloo for CPU tensors (object broadcasts, or `train.device=cpu` on a GPU machine).
    CPU-only machines use Gloo.
    """
    if env_world_size() <= 1 or not dist.is_available() or dist.is_initialized():
        return False
    backend = "gloo"
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s): "
                "start at most one process per GPU (torchrun --nproc_per_node <GPUs>)"
            )
        torch.cuda.set_device(local_rank)
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend=backend)
    log.info("process group: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return True


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def session() -> Iterator[bool]:
    """`init_from_env` for the duration of the block, which gets `is_main()`; tears down only
    what it set up."""
    initialized = init_from_env()
    try:
        yield is_main()
    finally:
        if initialized:
            cleanup()


def broadcast(obj: T, src: int = 0) -> T:
    """Rank `src`'s `obj` on every rank (pickled over the CPU backend); identity when alone."""
    if not active():
        return obj
    box: list[Any] = [obj]
    dist.broadcast_object_list(box, src=src)
    return cast(T, box[0])


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks; identity when alone."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor

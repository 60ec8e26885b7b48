"""Data-parallel training under `torchrun`: one process per device, gloo on CPUs, nccl on GPUs.

`torchrun --nproc_per_node=N -m training train ...` sets RANK, WORLD_SIZE and LOCAL_RANK; `setup`
reads them and joins the process group. A plain `python -m training ...` is a world of one, and
every helper here is then a no-op, so the single-process path has no distributed code in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place in the run: its rank, how many there are, and its device index on the host."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, histories, plots and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def setup(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group when started by torchrun (else a world of one); each rank gets its own GPU."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), device
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, device


def teardown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(obj: Any, world: World) -> Any:
    """Rank 0's `obj` on every rank (e.g. the step plan that rank 0 measured)."""
    if not world.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any, world: World) -> list[Any]:
    """Every rank's `obj`, in rank order (e.g. each rank's RNG state for an exact resume)."""
    if not world.distributed:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


@contextmanager
def main_first(world: World) -> Iterator[None]:
    """Rank 0 runs the block first, then the others (as Accelerate's `main_process_first`): one rank
    downloads CIFAR-10 or decodes it into the cache, and the rest read what it left there."""
    if not world.is_main:
        barrier(world)
    yield
    if world.is_main:
        barrier(world)

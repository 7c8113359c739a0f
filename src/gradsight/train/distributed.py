"""Training on several processes with PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

``torchrun --nproc_per_node=N -m gradsight train`` starts N processes, each with ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous address in its environment. Each one joins
the process group (NCCL on CUDA, one GPU per local rank; gloo on the CPU), trains its shard
of every batch through a ``DistributedDataParallel`` model (whose backward averages the
gradients over the ranks, so every rank holds the same gradients and weights), and adds up
its metrics with the others. Rank 0 alone writes files.

A global batch is ``batch_size * world_size`` images: every rank draws the same seeded
permutation and takes its own slice of each global batch, so N ranks see the images that one
process with an N times larger batch would see, in the same order.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gradsight.data.base import Batch, Split, TensorSplit
from gradsight.data.stream import StreamSplit
from gradsight.errors import ConfigError

__all__ = [
    "Ranks",
    "ShardedSplit",
    "all_reduce_sums",
    "broadcast_object",
    "current_ranks",
    "init_distributed",
    "leave_process_group",
    "local_module",
    "ranks_from_env",
    "weights_agree",
    "world_size",
    "wrap_model",
]


@dataclass(frozen=True)
class Ranks:
    """Where this process stands among the training processes."""

    rank: int
    world_size: int
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and prints progress."""
        return self.rank == 0


def ranks_from_env(environ: dict[str, str] | None = None) -> Ranks | None:
    """The ranks ``torchrun`` put in the environment; None for a single process.

    >>> ranks_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    Ranks(rank=1, world_size=2, local_rank=1)
    >>> ranks_from_env({}) is None
    True
    """
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank, local = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))
    except ValueError as exc:
        raise ConfigError(f"bad torchrun environment ({exc}); launch with torchrun") from None
    return Ranks(rank, world, local) if world > 1 else None


def current_ranks() -> Ranks | None:
    """The ranks of an initialised process group of 2 or more; None otherwise."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return Ranks(dist.get_rank(), dist.get_world_size(), local)


def world_size() -> int:
    """Processes training together: 1 without a process group."""
    ranks = current_ranks()
    return ranks.world_size if ranks else 1


def init_distributed(ranks: Ranks, device: torch.device) -> torch.device:
    """Join the process group (once) and return this rank's device.

    On CUDA every local rank gets its own GPU (``cuda:LOCAL_RANK``) and NCCL; elsewhere gloo.

    Raises:
        ConfigError: fewer GPUs than local ranks.
    """
    if device.type == "cuda":
        if ranks.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"local rank {ranks.local_rank} has no GPU: this node has "
                f"{torch.cuda.device_count()}; use --nproc_per_node={torch.cuda.device_count()}"
                " or --device cpu"
            )
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world_size)
    return device


def leave_process_group() -> None:
    """Wait for every rank, then leave the process group (if this process is in one)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def local_module(model: nn.Module) -> nn.Module:
    """The module a DistributedDataParallel wrapper holds: running it runs no collective,
    so one rank alone can replay a step through it."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel (rank 0's weights broadcast to every rank)."""
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def weights_agree(model: nn.Module) -> bool:
    """Whether every rank holds bit-identical parameters (True without a process group).

    Each rank hashes its parameters' bytes; the hashes are gathered. Every rank must call it.
    """
    ranks = current_ranks()
    if ranks is None:
        return True
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(p.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    hashes: list[str | None] = [None] * ranks.world_size
    dist.all_gather_object(hashes, digest.hexdigest())
    return len(set(hashes)) == 1


def all_reduce_sums(values: list[float], device: torch.device) -> list[float]:
    """``values`` summed over the ranks (themselves with no process group), in float64.

    Every rank must call it at the same point, with as many values.
    """
    if current_ranks() is None:
        return values
    where = device if dist.get_backend() == "nccl" else torch.device("cpu")
    total = torch.tensor(values, dtype=torch.float64, device=where)
    dist.all_reduce(total)
    return [float(v) for v in total.tolist()]


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself without a process group)."""
    if current_ranks() is None:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class ShardedSplit:
    """This rank's share of a split.

    Training (``shuffle=True``): the global permutation every rank draws from the same
    generator, cut into global batches of ``batch_size * world_size`` images, each split in
    ``world_size`` near-equal slices; this rank gets its slice. A last global batch with
    fewer images than ranks is dropped (every rank must take every step). Evaluation
    (``shuffle=False``): a contiguous share of the split, every image on exactly one rank.
    ``len()`` is the whole split's size: the metrics are summed over the ranks.
    """

    def __init__(self, split: Split, ranks: Ranks) -> None:
        if not isinstance(split, TensorSplit | StreamSplit):
            raise ConfigError(f"cannot shard a {type(split).__name__} across ranks")
        self.split = split
        self.ranks = ranks

    def __len__(self) -> int:
        return len(self.split)

    def num_batches(self, batch_size: int) -> int:
        """Steps per epoch: global batches with at least one image per rank."""
        n, world = len(self.split), self.ranks.world_size
        full, rest = divmod(n, batch_size * world)
        return full + (rest >= world)

    def _indices(self, n: int, shuffle: bool, generator: torch.Generator | None) -> Tensor:
        if shuffle:
            return torch.randperm(n, generator=generator)
        return torch.tensor_split(torch.arange(n), self.ranks.world_size)[self.ranks.rank]

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        device: torch.device | None = None,
    ) -> Iterator[Batch]:
        world, rank = self.ranks.world_size, self.ranks.rank
        order = self._indices(len(self.split), shuffle, generator)
        if shuffle:  # this rank's slice of each global batch
            chunks = [torch.tensor_split(c, world)[rank]
                      for c in order.split(batch_size * world) if len(c) >= world]  # fmt: skip
        else:
            chunks = list(order.split(batch_size))
        split = self.split
        if isinstance(split, TensorSplit):
            for idx in chunks:
                yield split.take(idx, device)
            return
        assert isinstance(split, StreamSplit)  # the same steps, loaded by DataLoader workers
        yield from split.batches_of([c.tolist() for c in chunks], device)

"""The monitor across training processes: the same decision on every rank, one report.

Under DistributedDataParallel every rank holds the averaged gradients, so a NaN/Inf born on
one rank reaches them all; in other set-ups (gradients not yet synced, a hand-written
all-reduce after the check) it may not. Either way the ranks must agree, or one stops while
the others wait in an all-reduce forever: the NaN/Inf flags each rank read are added up over
the ranks (one small collective where the flags are read anyway). Which rank the fault came
from is found by each rank replaying its own batch; the replays are gathered so that the
finding rank 0 writes names the rank(s) and the birthplace one of them found.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.distributed as dist

from gradsight.health.findings import Finding
from gradsight.train.distributed import current_ranks

__all__ = ["across_ranks", "global_flags"]

_BORN = ("input", "weights", "forward", "backward")


def global_flags(values: list[float], device: torch.device) -> list[float]:
    """``values`` (gradient norms, NaN/Inf meaning a non-finite gradient) with NaN wherever
    any rank read a NaN/Inf at that position; ``values`` itself without a process group.

    Every rank must call it at the same point, with as many values.
    """
    ranks = current_ranks()
    if ranks is None or not values:
        return values
    where = device if dist.get_backend() == "nccl" else torch.device("cpu")
    flags = torch.tensor([not math.isfinite(v) for v in values], dtype=torch.int32, device=where)
    dist.all_reduce(flags)
    return [math.nan if bad else v for v, bad in zip(values, flags.tolist(), strict=True)]


def across_ranks(finding: Finding) -> Finding:
    """Rank 0's view of a NaN/Inf diagnosed on every rank: which ranks' own batch made it
    (their replay found where it was born), and that birthplace; ``finding`` itself without
    a process group. Every rank must call it at the same step."""
    ranks = current_ranks()
    if ranks is None:
        return finding
    found: list[Finding | None] = [None] * ranks.world_size
    dist.all_gather_object(found, finding)
    born = [r for r, f in enumerate(found) if f is not None and f.phase in _BORN]
    if not born:
        where = f"on every rank of {ranks.world_size} (no rank's replay found it)"
        return replace(finding, message=f"{where}: {finding.message}")
    first = found[born[0]]
    assert first is not None
    names = ", ".join(map(str, born))
    where = f"rank{'s' if len(born) > 1 else ''} {names} of {ranks.world_size}"
    return replace(first, message=f"{where}: {first.message}", ranks=tuple(born))

"""Where the loop is inside an epoch: its running metrics, and the point a resume starts from."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from gradsight.autograd import tensors
from gradsight.train.distributed import all_reduce_sums
from gradsight.train.events import EpochRecord

__all__ = ["MetricWindow", "ResumePoint"]


@dataclass
class MetricWindow:
    """Per-step losses and hit counts kept on the device until the next sync, plus epoch sums.

    ``losses``/``hits`` hold one scalar per step since the last flush (a tensor on an
    accelerator; on the CPU, where reading costs no sync, a number); the ``*_total``
    fields sum the flushed windows of the current epoch. Saved whole in a checkpoint so a
    resumed epoch reports bit-identical metrics.
    """

    losses: list[Tensor | float] = field(default_factory=list)  # each: mean loss of one batch
    hits: list[Tensor | int] = field(default_factory=list)  # correct predictions of each step
    sizes: list[int] = field(default_factory=list)
    loss_total: float = 0.0  # loss summed over the images of flushed windows
    hits_total: int = 0
    seen: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, loss: Tensor, outputs: Tensor, targets: Tensor) -> None:
        """Append one step: ``outputs`` (B, num_classes), ``targets`` (B,)."""
        hit = (outputs.detach().argmax(dim=1) == targets).sum()
        # On the CPU reading the loss and the count now costs no sync, and keeping these
        # small tensors alive measured slower per epoch (benchmarks/bench_train.py); on an
        # accelerator they stay on the device until the next flush.
        if tensors.read_is_free(hit.device):
            self.losses.append(float(loss.detach()))
            self.hits.append(int(hit))
        else:
            self.losses.append(loss.detach())
            self.hits.append(hit)
        self.sizes.append(int(targets.shape[0]))

    def flush(self) -> tuple[float, int, int, float]:
        """Return (loss sum over images, hits, images, seconds), add them to the totals, reset."""
        if not self.sizes:
            return 0.0, 0, 0, 0.0
        device = next((t.device for t in self.losses if isinstance(t, Tensor)), None)
        losses = tensors.read_scalars(self.losses)  # one sync each
        hits = tensors.read_scalars(self.hits)
        loss_sum = math.fsum(loss * size for loss, size in zip(losses, self.sizes, strict=True))
        images, seconds = sum(self.sizes), time.perf_counter() - self.started
        # under torchrun: every rank's window added up (each rank flushes at the same steps)
        loss_sum, hits_f, images_f = all_reduce_sums(
            [loss_sum, sum(hits), images], device or torch.device("cpu")
        )
        hits_n, images = round(hits_f), round(images_f)
        self.losses, self.hits, self.sizes = [], [], []
        self.started = time.perf_counter()
        self.loss_total, self.hits_total = self.loss_total + loss_sum, self.hits_total + hits_n
        self.seen += images
        return loss_sum, hits_n, images, seconds

    def to_dict(self) -> dict[str, Any]:
        """Return the window as tensors and numbers only (safe for ``weights_only`` loading)."""
        return {
            "losses": [torch.as_tensor(t).to("cpu") for t in self.losses],
            "hits": [torch.as_tensor(h).to("cpu") for h in self.hits],
            "sizes": list(self.sizes),
            "loss_total": self.loss_total,
            "hits_total": self.hits_total,
            "seen": self.seen,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], device: torch.device) -> MetricWindow:
        """Rebuild a window saved by :meth:`to_dict`, its tensors on ``device``."""
        return cls(
            losses=[t.to(device) for t in data["losses"]],
            hits=[t.to(device) for t in data["hits"]],
            sizes=list(data["sizes"]),
            loss_total=float(data["loss_total"]),
            hits_total=int(data["hits_total"]),
            seen=int(data["seen"]),
        )


@dataclass(frozen=True)
class ResumePoint:
    """Everything ``fit`` needs to continue a run bit-identically.

    The model and optimizer are restored by the caller; this holds the loop's own position.
    """

    epoch: int  # 1-based epoch to continue
    batch_index: int  # batches of that epoch already done (skipped on resume)
    step: int  # optimizer steps done
    skipped_steps: int
    history: tuple[EpochRecord, ...]
    data_order_state: Tensor  # the data generator's state at the start of ``epoch``
    window: MetricWindow  # metrics of ``epoch`` so far
    rng: dict[str, Any]  # from :func:`gradsight.train.rng.capture_rng`
    clipped_steps: int = 0  # absent from checkpoints written before the loop clipped
    scaler: dict[str, Any] | None = None  # --amp fp16: the GradScaler's scale and counters

"""Host syncs per step of ``gradsight train`` on a GPU, counted by CUDA's sync debug mode.

Runs ``gradsight train`` in process on the bundled set (one epoch: 200 steps of 64) with
``--log-every 8 --nonfinite-check-every 4`` and ``torch.cuda.set_sync_debug_mode("warn")``
from the first step on, which warns at every operation that makes the host wait for the
GPU (``.item()``, ``float()``, a copy to the CPU, ...). Each warning is put in the bucket of
the step running (from its forward to the next one's), or of the epoch's end.

Expected: syncs only at the first step (its graph, trace and NaN sentinel), at sentinel
steps (every 200), at each 4th step (the NaN/Inf flag), each 8th (the log line) and each
100th (the monitor's update/weight ratios), and in
the last step of each epoch (its metrics read, then the evaluation, which runs before the
``epoch_end`` event) and at epoch ends; every other step none. Exit code 1 otherwise,
naming the steps and where the first unexpected sync came from.
``tests/train/test_host_reads.py`` checks the same on the CPU by replacing the predicate
that chooses the GPU path; this script checks it on a GPU.

    python benchmarks/gpu_sync_check.py [--device cuda] [--epochs 1] [--log-every 8]
                                         [--check-every 4] [--train-args "--clip-grad-norm 1"]

Without a CUDA device it says so and exits 0 (nothing to check).
"""

from __future__ import annotations

import argparse
import io
import shlex
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bench_train import timed_cli_fit
from gradsight.cli import main as cli_main
from gradsight.health.config import MonitorConfig, ends_interval
from gradsight.train.events import Observer, TrainState

Bucket = int | str


class SyncBuckets(Observer):
    """Turns CUDA's sync warnings on at train start and sorts them into per-step buckets."""

    def __init__(self, log: list[warnings.WarningMessage]) -> None:
        self.log = log
        self.bucket: Bucket = "start"
        self.counts: dict[Bucket, int] = {}
        self.first: dict[Bucket, str] = {}  # where each bucket's first sync came from
        self.epoch_ends: set[int] = set()  # the last step of each epoch
        self.steps = 0
        self._seen = 0

    def _close(self, next_bucket: Bucket) -> None:
        new = self.log[self._seen :]
        self._seen = len(self.log)
        syncs = [w for w in new if "synchronizing CUDA operation" in str(w.message)]
        if syncs:
            self.counts[self.bucket] = self.counts.get(self.bucket, 0) + len(syncs)
            self.first.setdefault(self.bucket, f"{syncs[0].filename}:{syncs[0].lineno}")
        self.bucket = next_bucket

    def on_train_start(self, state: TrainState) -> None:
        torch.cuda.set_sync_debug_mode("warn")

    def on_before_forward(self, state: TrainState) -> None:
        self._close(state.step)

    def on_epoch_end(self, state: TrainState, record: Any) -> None:
        self.epoch_ends.add(state.step - 1)
        self._close(f"epoch {state.epoch} end")

    def on_train_end(self, state: TrainState, status: str) -> None:
        self._close("end")
        self.steps = state.step
        torch.cuda.set_sync_debug_mode("default")


def expected(step: int, log_every: int, check_every: int, monitor: MonitorConfig) -> bool:
    """Whether ``step`` may sync: the first, a sentinel, a flag-read, a log or an
    update-ratio step (``monitor``: the sentinel and update intervals)."""
    sentinel = monitor.sentinel_every > 0 and step % monitor.sentinel_every == 0
    read = ends_interval(step, check_every) or ends_interval(step, log_every)
    return step == 0 or sentinel or read or ends_interval(step, monitor.update_every)


def unexpected(
    buckets: SyncBuckets, log_every: int, check_every: int, monitor: MonitorConfig
) -> list[int]:
    """The steps that synced though none of the reasons in :func:`expected` applies and
    they are not the last of an epoch."""
    return [
        s for s in range(buckets.steps)
        if buckets.counts.get(s, 0) and s not in buckets.epoch_ends
        and not expected(s, log_every, check_every, monitor)
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--data", default="fashion-mnist-mini")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--log-every", type=int, default=8)
    parser.add_argument("--check-every", type=int, default=4)
    parser.add_argument("--train-args", default="", help="more gradsight train options")
    args = parser.parse_args(argv)
    if not (args.device.startswith("cuda") and torch.cuda.is_available()):
        print(f"gpu_sync_check: needs a CUDA device (--device {args.device}); nothing checked")
        return 0
    train = [
        "train", "--quiet", "--device", args.device, "--data", args.data,
        "--epochs", str(args.epochs), "--log-every", str(args.log_every),
        "--nonfinite-check-every", str(args.check_every), *shlex.split(args.train_args),
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        buckets = SyncBuckets(caught)
        err = io.StringIO()
        with timed_cli_fit(extra=[buckets]):
            out = ["--out", str(Path(folder) / "run")]
            code = cli_main([*train, *out], stdout=io.StringIO(), stderr=err)
    if code != 0:
        print(f"gpu_sync_check: gradsight train exited {code}:\n{err.getvalue()}")
        return 1
    bad = unexpected(buckets, args.log_every, args.check_every, MonitorConfig())
    synced = sorted(k for k in buckets.counts if isinstance(k, int))
    print(
        f"host syncs per step: gradsight {' '.join(train)} on "
        f"{torch.cuda.get_device_name()}, {buckets.steps} steps"
    )
    print(f"steps that synced: {len(synced)} ({', '.join(map(str, synced[:24]))}"
          f"{' ...' if len(synced) > 24 else ''})")  # fmt: skip
    print(f"steps without a sync: {buckets.steps - len(synced)}")
    others = {k: v for k, v in buckets.counts.items() if not isinstance(k, int)}
    print(f"outside steps: {others}")
    if bad:
        print(f"UNEXPECTED syncs at steps {bad[:20]}; the first from {buckets.first[bad[0]]}")
        return 1
    print("verdict: no host sync outside the first, sentinel, flag-read and log steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Images/s of ``gradsight train`` on 2 ranks (torchrun, gloo, DDP) vs 1 process, in one run.

Three runs of the same training (SimpleCNN on the bundled 12,800 images, global batch 128,
``--epochs`` epochs) on the CPU:

- ``1 process``: the default, torch using every core for its ops;
- ``1 process, 1 thread``: what one rank has under torchrun (OMP_NUM_THREADS=1);
- ``2 ranks``: ``torchrun --nproc_per_node=2``, batch 64 per rank, gradients all-reduced.

Reported: training images/s from the epoch records (the epochs' own seconds, evaluation
included, start-up excluded) and the wall time of the whole command. On a 2-core machine
two ranks share the cores one process already uses, so the honest expectation is at most
1x: what 2 ranks add there is the gloo all-reduce and a second copy of the data (one quiet
run: 0.81x one 2-thread process, 1.44x one 1-thread process). The
speed-up DDP is for shows with one GPU (or one machine) per rank.

    python benchmarks/bench_distributed.py [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], cwd: Path, threads: int | None) -> tuple[float, float]:
    """(training images/s, wall seconds) of one ``gradsight train`` command."""
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = [json.loads(line) for line in (cwd / "run" / "metrics.jsonl").open()]
    epochs = [r for r in lines if r.get("kind") == "epoch"]
    images = 12_800 * len(epochs)
    return images / sum(float(r["seconds"]) for r in epochs), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    common = ["train", "--device", "cpu", "--quiet", "--epochs", str(args.epochs),
              "--out", "run"]  # fmt: skip
    gradsight = [sys.executable, "-m", "gradsight"]
    torchrun = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_port()}", "-m", "gradsight",
    ]  # fmt: skip
    variants = {
        "1 process": (gradsight + common + ["--batch-size", "128"], None),
        "1 process, 1 thread": (gradsight + common + ["--batch-size", "128"], 1),
        "2 ranks (DDP, gloo)": (torchrun + common + ["--batch-size", "64"], 1),
    }
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, SimpleCNN, global batch 128, "
          f"{args.epochs} epoch(s) of 12,800 images")  # fmt: skip
    results = {}
    for name, (cmd, threads) in variants.items():
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = _run(cmd, Path(tmp), threads)
    base = results["1 process"][0]
    print(f"{'':<22}{'images/s':>10}{'vs 1 process':>14}{'wall s':>8}")
    for name, (speed, wall) in results.items():
        print(f"{name:<22}{speed:>10,.0f}{speed / base:>13.2f}x{wall:>8.1f}")
    print("2 CPU cores: two ranks share the cores one process already uses; expect at most 1x")


if __name__ == "__main__":
    main()

"""Collect what is needed to compare or repeat a run: versions, device, seed, command line."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["collect_env", "device_name", "git_commit"]


def git_commit(path: Path | None = None) -> str | None:
    """Return the commit of the git checkout holding ``path`` (gradsight's source), or None."""
    where = path or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def device_name(device: torch.device) -> str:
    """Return a human name for ``device``: the GPU model, or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        return str(__import__(module).__version__)
    except Exception:  # an optional package may be absent or broken; record that as null
        return None


def collect_env(device: torch.device, seed: int, argv: list[str]) -> dict[str, Any]:
    """Return ``env.json``'s content for a run on ``device``.

    CUDA and cuDNN versions are null when torch has no CUDA; the git commit is null unless
    gradsight runs from a checkout.
    """
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "gradsight": _version("gradsight"),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "numpy": np.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "device": str(device),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "seed": seed,
        "command_line": argv,
        "cwd": os.getcwd(),
        "git_commit": git_commit(),
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }

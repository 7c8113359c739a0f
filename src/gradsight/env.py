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


def _git(where: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit(path: Path | None = None) -> tuple[str | None, bool | None]:
    """Return (commit, has uncommitted changes) of the checkout holding ``path``, or Nones.

    ``path`` defaults to gradsight's own source, so a run records which gradsight made it.
    """
    where = path or Path(__file__).resolve().parent
    commit = _git(where, "rev-parse", "HEAD")
    if not commit:
        return None, None
    status = _git(where, "status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None else None)


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

    ``cuda`` and ``cudnn`` are the versions torch was built with (null for a CPU-only build);
    ``cuda_available`` says whether this machine could use them. The git commit is null
    unless gradsight runs from a checkout.
    """
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    commit, dirty = git_commit()
    return {
        "python": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "gradsight": _version("gradsight"),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "numpy": np.__version__,
        "cuda": torch.version.cuda,  # what torch was built with; null for CPU-only builds
        "cudnn": cudnn,
        "cuda_available": torch.cuda.is_available(),
        "cuda_device_count": torch.cuda.device_count(),
        "device": str(device),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "seed": seed,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "command_line": argv,
        "cwd": os.getcwd(),
        "git_commit": commit,
        "git_dirty": dirty,
        "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }

"""Pick the torch device from ``auto|cpu|cuda[:N]|mps``, with a clear error when it is absent."""

from __future__ import annotations

import torch

from gradsight.errors import DeviceError

__all__ = ["DEVICES", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str) -> torch.device:
    """Return the device ``name`` asks for; ``auto`` picks cuda, then mps, then cpu.

    Raises:
        DeviceError: an unknown name, or a device this machine does not have.
    """
    kind, _, index = name.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise DeviceError(f"unknown device '{name}'. Valid devices: auto, cpu, cuda, cuda:N, mps")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cuda":
        if not torch.cuda.is_available():
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
            raise DeviceError(
                f"--device {name}: CUDA is not available on this machine (torch {torch.__version__}"
                f" is {built}); use --device cpu"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}"
            )
    if kind == "mps" and not _mps_available():
        raise DeviceError(f"--device {name}: Apple MPS is not available here; use --device cpu")
    return torch.device(name)

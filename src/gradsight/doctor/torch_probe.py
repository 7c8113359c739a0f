"""Ask the installed torch what it was built with, what it loads, and whether CUDA starts."""

from __future__ import annotations

import re
import warnings
from typing import Any

import torch

from gradsight.doctor.facts import TorchFacts

__all__ = ["cudnn_version_string", "probe_torch"]


def cudnn_version_string(version: int) -> str:
    """Return ``torch.backends.cudnn.version()``'s number as "major.minor.patch".

    cuDNN 9 counts major * 10000, cuDNN 8 and older major * 1000.

    >>> cudnn_version_string(90100), cudnn_version_string(8902)
    ('9.1.0', '8.9.2')
    """
    if version >= 90000:
        return f"{version // 10000}.{version % 10000 // 100}.{version % 100}"
    return f"{version // 1000}.{version % 1000 // 100}.{version % 100}"


def _one_line(message: str) -> str:
    """Return torch's message without its prefix, source location and second lines."""
    line = message.strip().splitlines()[0] if message.strip() else message
    line = line.removeprefix("CUDA initialization: ")
    line = line.split(" (Triggered internally at", 1)[0].strip()
    return re.split(r"\.\s+(?=[A-Z])", line, maxsplit=1)[0].rstrip(".")  # the rest is advice


def _cuda_state() -> tuple[bool, int, str | None]:
    """Return (is_available, device_count, torch's reason when CUDA does not start)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
        count = torch.cuda.device_count()
    error = next((_one_line(str(w.message)) for w in caught if "CUDA" in str(w.message)), None)
    if torch.version.cuda and not available and error is None:
        try:  # is_available() says False quietly; initialising says why
            torch.cuda.init()
        except Exception as exc:  # RuntimeError or AssertionError, depending on the cause
            error = _one_line(str(exc))
    return available, count, error


def _dotted(version: Any) -> str:
    return ".".join(str(int(v)) for v in version)


def _cudnn() -> tuple[str | None, str | None, str | None]:
    """Return (cuDNN built with, cuDNN loaded, torch's incompatibility message)."""
    lib: Any = getattr(torch._C, "_cudnn", None)  # absent from CPU-only builds
    if lib is None:
        return None, None, None
    built = loaded = error = None
    try:
        built = _dotted(lib.getCompileVersion())
        loaded = _dotted(lib.getRuntimeVersion())
    except Exception:  # no cuDNN library to load: leave what was found
        pass
    try:
        number = torch.backends.cudnn.version()  # runs torch's own compatibility check
        if loaded is None and number is not None:
            loaded = cudnn_version_string(number)
    except RuntimeError as exc:
        error = _one_line(str(exc))
    return built, loaded, error


def probe_torch() -> TorchFacts:
    """Return what the installed torch says about its CUDA, cuDNN and MPS."""
    available, count, error = _cuda_state()
    built, loaded, cudnn_error = _cudnn()
    mps: Any = getattr(torch.backends, "mps", None)
    return TorchFacts(
        version=str(torch.__version__),
        cuda=torch.version.cuda,
        cuda_available=available,
        device_count=count,
        cuda_error=error,
        cudnn_built=built,
        cudnn_loaded=loaded,
        cudnn_error=cudnn_error,
        mps_built=bool(mps is not None and mps.is_built()),
        mps_available=bool(mps is not None and mps.is_available()),
    )

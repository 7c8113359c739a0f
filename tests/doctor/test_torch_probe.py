"""What torch says: its real answers here, and its messages on machines it failed on."""

from __future__ import annotations

import warnings

import pytest
import torch

from gradsight.doctor.torch_probe import cudnn_version_string, probe_torch

NO_DRIVER = (
    "Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and installed "
    "a driver from http://www.nvidia.com/Download/index.aspx"
)
TOO_OLD = (
    "CUDA initialization: The NVIDIA driver on your system is too old (found version 12040). "
    "Please update your GPU driver by downloading and installing a new version from the URL: "
    "http://www.nvidia.com/Download/index.aspx Alternatively, go to: https://pytorch.org to "
    "install a PyTorch version that has been compiled with your version of the CUDA driver. "
    "(Triggered internally at /pytorch/c10/cuda/CUDAFunctions.cpp:109.)"
)


def test_what_torch_says_here() -> None:
    t = probe_torch()
    assert (t.version, t.cuda) == (torch.__version__, torch.version.cuda)
    assert t.cuda_available == torch.cuda.is_available()
    assert t.device_count == torch.cuda.device_count()
    if torch.backends.cudnn.is_available() and t.cudnn_error is None:
        assert t.cudnn_loaded == cudnn_version_string(torch.backends.cudnn.version() or 0)
    if t.cuda and not t.cuda_usable:  # CUDA torch without a GPU: torch's reason is kept
        assert t.cuda_error and "\n" not in t.cuda_error


def test_a_warning_from_is_available_becomes_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def is_available() -> bool:
        warnings.warn(TOO_OLD, UserWarning, stacklevel=1)
        return False

    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", is_available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    t = probe_torch()
    assert t.cuda_error == "The NVIDIA driver on your system is too old (found version 12040)"


def test_a_quiet_false_is_explained_by_initialising(monkeypatch: pytest.MonkeyPatch) -> None:
    def init() -> None:
        raise RuntimeError(NO_DRIVER)

    monkeypatch.setattr(torch.version, "cuda", "12.6")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.cuda, "init", init)
    t = probe_torch()
    assert (t.cuda_available, t.cuda_error) == (False, "Found no NVIDIA driver on your system")


def test_cudnn_numbers() -> None:
    assert cudnn_version_string(92400) == "9.24.0"
    assert cudnn_version_string(8906) == "8.9.6"

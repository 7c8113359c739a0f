from __future__ import annotations

import pytest
import torch

from gradsight.errors import DeviceError
from gradsight.train import resolve_device


def test_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    auto = resolve_device("auto")
    if expected:
        assert auto.type == "cuda"
    else:
        assert auto.type in {"cpu", "mps"}


def test_unknown_device_lists_valid() -> None:
    with pytest.raises(DeviceError, match=r"unknown device 'tpu'. Valid devices: auto, cpu, cuda"):
        resolve_device("tpu")
    with pytest.raises(DeviceError, match="unknown device 'cpu:1'"):
        resolve_device("cpu:1")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_suggests_cpu() -> None:
    with pytest.raises(DeviceError, match=r"CUDA is not available.*use --device cpu"):
        resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_out_of_range() -> None:
    with pytest.raises(DeviceError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")

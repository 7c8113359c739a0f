"""The driver table and the wheel chosen for a driver."""

from __future__ import annotations

import pytest

from gradsight.doctor.drivers import min_driver, parse_version, pip_install, wheel_index


@pytest.mark.parametrize(
    ("cuda", "system", "needed"),
    [
        ("13.0", "Linux", "580"),
        ("12.8", "Linux", "525.60.13"),
        ("12.4", "Windows", "527.41"),
        ("11.8", "Linux", "450.80.02"),
        ("11.8", "Windows", "452.39"),
        ("10.2", "Linux", None),
    ],
)
def test_minimum_driver_per_cuda_major(cuda: str, system: str, needed: str | None) -> None:
    assert min_driver(cuda, system) == needed


@pytest.mark.parametrize(
    ("driver", "system", "index"),
    [
        ("580.65.06", "Linux", "cu130"),
        ("575.51.03", "Linux", "cu128"),  # 12.x's newest: 570.26 ships with CUDA 12.8
        ("560.35.05", "Linux", "cu126"),
        ("525.60.13", "Linux", "cu126"),  # minor-version compatibility: oldest 12.x wheel
        ("525.60.12", "Linux", "cu118"),
        ("527.41", "Windows", "cu126"),
        ("452.39", "Windows", "cu118"),
        ("450.80.01", "Linux", None),
        (None, "Linux", "cu130"),
    ],
)
def test_wheel_for_a_driver(driver: str | None, system: str, index: str | None) -> None:
    assert wheel_index(driver, system) == index


def test_versions_compare_as_numbers() -> None:
    assert parse_version("470.182.03") < parse_version("525.60.13") < parse_version("1000.1")
    assert parse_version("550.54.15-beta") == (550, 54, 15)


def test_pip_command() -> None:
    cmd = pip_install("cu128").split()
    assert cmd[:4] == ["pip", "install", "--force-reinstall", "torch"]
    assert cmd[-2:] == ["--index-url", "https://download.pytorch.org/whl/cu128"]

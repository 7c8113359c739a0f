"""The NVIDIA driver each CUDA runtime needs, and the torch wheel a given driver can run."""

from __future__ import annotations

__all__ = [
    "WHEEL_INDEX_URL",
    "cuda_of_driver_api",
    "min_driver",
    "parse_version",
    "pip_install",
    "wheel_index",
]

# Minimum driver for CUDA minor-version compatibility, per CUDA major: an application built with
# any 12.x runtime (as every cu12x torch wheel is) runs on any driver at or above the 12.x line.
# Sources: NVIDIA "CUDA Compatibility" guide, section "Minor Version Compatibility"
# (docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html: 13.x >= 580,
# 12.x >= 525, 11.x >= 450 [450.80.02 Linux / 452.39 Windows]) and the CUDA Toolkit release
# notes, table "CUDA Toolkit and Minimum Required Driver Version for CUDA Minor Version
# Compatibility" (12.x: >= 525.60.13 Linux, >= 527.41 Windows).
_MIN_DRIVER: dict[int, dict[str, str]] = {
    13: {"Linux": "580", "Windows": "580"},
    12: {"Linux": "525.60.13", "Windows": "527.41"},
    11: {"Linux": "450.80.02", "Windows": "452.39"},
}

WHEEL_INDEX_URL = "https://download.pytorch.org/whl/"

# PyTorch's CUDA wheel indexes, newest first, with the Linux driver the CUDA toolkit of the same
# version shipped with (CUDA Toolkit release notes, table "CUDA Toolkit and Corresponding Driver
# Versions": 13.0 GA 580.65.06, 12.8 GA 570.26, 12.6 GA 560.28.03, 11.8 GA 520.61.05). A driver
# at or above it runs that wheel with no minor-version-compatibility caveats.
_WHEELS: tuple[tuple[str, int, str], ...] = (
    ("cu130", 13, "580.65.06"),
    ("cu128", 12, "570.26"),
    ("cu126", 12, "560.28.03"),
    ("cu118", 11, "520.61.05"),
)


def parse_version(text: str) -> tuple[int, ...]:
    """Return a dotted version as a tuple of ints, for comparing.

    >>> parse_version("525.60.13") < parse_version("535.104.05")
    True
    >>> parse_version("12.4")
    (12, 4)
    """
    parts = []
    for piece in text.strip().split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def min_driver(cuda: str, system: str) -> str | None:
    """Return the oldest driver that runs CUDA ``cuda`` ("12.4") on ``system``, if known.

    >>> min_driver("12.8", "Linux"), min_driver("11.8", "Windows"), min_driver("12.8", "Darwin")
    ('525.60.13', '452.39', None)
    """
    major = parse_version(cuda)[:1]
    table = _MIN_DRIVER.get(major[0], {}) if major else {}
    return table.get(system)


def cuda_of_driver_api(version: int) -> str:
    """Return the CUDA version a driver API number stands for (torch quotes 12040 for 12.4).

    >>> cuda_of_driver_api(12040)
    '12.4'
    """
    return f"{version // 1000}.{version % 1000 // 10}"


def wheel_index(driver: str | None, system: str) -> str | None:
    """Return the PyTorch wheel index ("cu126") that suits ``driver``, None if it is too old.

    The CUDA major is the newest that the driver supports; within it, the newest wheel whose
    toolkit driver it meets, else the oldest wheel of that major (minor-version compatibility).
    With no driver known (none installed yet), the newest: a driver installed today runs it.

    >>> [wheel_index(d, "Linux") for d in ("580.95.05", "570.133.07", "535.104.05", "470.82")]
    ['cu130', 'cu128', 'cu126', 'cu118']
    >>> wheel_index("440.33", "Linux") is None
    True
    """
    if driver is None:
        return _WHEELS[0][0]
    have = parse_version(driver)
    majors = [
        m for m, table in _MIN_DRIVER.items() if parse_version(table.get(system, "0")) <= have
    ]
    if not majors:
        return None
    same_major = [(name, ga) for name, major, ga in _WHEELS if major == max(majors)]
    for name, ga in same_major:
        if parse_version(ga) <= have:
            return name
    return same_major[-1][0]


def pip_install(index: str) -> str:
    """Return the command that replaces torch and torchvision with the wheels of ``index``.

    >>> pip_install("cu126")
    'pip install --force-reinstall torch torchvision --index-url https://download.pytorch.org/whl/cu126'
    """
    return f"pip install --force-reinstall torch torchvision --index-url {WHEEL_INDEX_URL}{index}"

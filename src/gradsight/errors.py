"""The exceptions gradsight raises for bad input.

Every message names the bad value, the allowed values where there is a finite set, and
the fix. The CLI turns a :class:`GradsightError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DeviceError",
    "GradsightError",
    "ModelError",
]


class GradsightError(Exception):
    """Base class of every error gradsight raises on purpose."""


class ConfigError(GradsightError, ValueError):
    """A configuration value is out of range or unknown (lr, batch size, optimizer...)."""


class DataError(GradsightError):
    """A dataset cannot be found, read or downloaded."""


class ModelError(GradsightError):
    """A model cannot be built, imported, or does not fit the data."""


class DeviceError(GradsightError):
    """The requested device is not available on this machine."""


class CheckpointError(GradsightError):
    """A checkpoint cannot be found, is corrupted, or would need unsafe unpickling to load."""

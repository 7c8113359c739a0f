"""Where downloadable datasets live on disk: the cache folder and the user's ``data_dir``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gradsight.errors import DataError

__all__ = ["DATA_DIR_ENV", "DataRoot", "default_cache_dir", "download_error", "resolve_root"]

DATA_DIR_ENV = "GRADSIGHT_DATA_DIR"


def default_cache_dir() -> Path:
    """Return the folder that holds downloaded datasets when no ``data_dir`` is given.

    It is ``$GRADSIGHT_DATA_DIR`` when that is set and not empty, else
    ``~/.cache/gradsight/data``. The folder is not created here.
    """
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "gradsight" / "data"


@dataclass(frozen=True)
class DataRoot:
    """The folder to read a dataset from, and whether to download into it when files lack."""

    path: Path
    download: bool
    is_cache: bool


def resolve_root(data_dir: str | Path | None, download: bool | None) -> DataRoot:
    """Choose the folder to read from and whether downloading is allowed.

    With no ``data_dir`` the cache is used and downloading defaults to on; with a
    ``data_dir`` downloading defaults to off, and the folder must exist unless
    ``download=True`` asks to create it.

    Raises:
        DataError: ``data_dir`` does not exist, or is a file, and no download was asked for.
    """
    if data_dir is None:
        return DataRoot(default_cache_dir(), True if download is None else download, True)
    path = Path(data_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise DataError(f"data dir {path} is a file, not a folder; pass the folder that holds it.")
    if not path.exists() and not download:
        raise DataError(
            f"data dir {path} does not exist. Pass an existing folder with --data-dir, "
            "or add --download to create it and fetch the dataset there."
        )
    return DataRoot(path, bool(download), False)


def download_error(title: str, root: Path, exc: BaseException, offline_hint: str) -> DataError:
    """Build the error raised when torchvision could not fetch a dataset.

    Args:
        title: the dataset's display name, e.g. ``"Fashion-MNIST"``.
        root: the folder it was downloading into.
        exc: what torchvision raised.
        offline_hint: how to get the files without network access.
    """
    return DataError(f"could not download {title} into {root}: {_summary(exc)}. {offline_hint}.")


def _summary(exc: BaseException) -> str:
    """Return the first line of ``exc``, plus its last line when that names the cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) == 1:
        return lines[0].rstrip(".")
    return f"{lines[0].rstrip(':')}: {lines[-1]}".rstrip(".")

"""CIFAR-10 from its python-pickle batches, found on disk or fetched by torchvision.

The batches are pickles, so they are read with an unpickler that only rebuilds NumPy arrays:
a crafted file in a data folder cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from gradsight.data.base import DatasetInfo, LoadedDataset, TensorSplit, channel_stats_uint8
from gradsight.data.storage import download_error, resolve_root
from gradsight.errors import DataError

__all__ = [
    "CIFAR_FOLDER",
    "CIFAR_META",
    "CIFAR_TEST_BATCH",
    "CIFAR_TRAIN_BATCHES",
    "find_cifar_folder",
    "load_cifar10",
    "read_cifar_batch",
    "read_cifar_meta",
]

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"
CIFAR_META = "batches.meta"
_ALL_FILES = (*CIFAR_TRAIN_BATCHES, CIFAR_TEST_BATCH, CIFAR_META)
_TITLE = "CIFAR-10"
_LICENCE = "no licence stated; cite Krizhevsky 2009, Learning Multiple Layers of Features"
_OFFLINE_HINT = (
    "To get the files offline, put cifar-10-python.tar.gz (from the CIFAR-10 page of the "
    "University of Toronto) into {dir} and pass --download, which checks and extracts it "
    "without the network; or extract it there yourself"
)


def load_cifar10(
    *, data_dir: str | Path | None = None, download: bool | None = None
) -> LoadedDataset:
    """Load CIFAR-10 (32x32 RGB, 10 classes) into memory, normalised per channel.

    The batches are looked for in ``<folder>/cifar-10-batches-py/`` and in the folder itself.
    Missing files are fetched with torchvision's ``download_and_extract_archive`` and
    ``CIFAR10``'s URL and checksum when downloading is allowed.

    Args:
        data_dir: the folder holding the batches; ``None`` uses :func:`default_cache_dir`.
        download: fetch missing files; defaults to ``True`` for the cache, ``False`` for a
            given ``data_dir``.

    Returns:
        50,000 train and 10,000 test images (N, 3, 32, 32) for the full dataset.

    Raises:
        DataError: the folder or files are missing and not downloaded, the download fails,
            or a batch is corrupted.
    """
    root = resolve_root(data_dir, download)
    folder = find_cifar_folder(root.path)
    if folder is None:
        if not root.download:
            raise _missing_files_error(root.path)
        _download(root.path)
        folder = find_cifar_folder(root.path)
        if folder is None:
            raise _missing_files_error(root.path)
    return _read(folder)


def find_cifar_folder(root: Path) -> Path | None:
    """Return ``root/cifar-10-batches-py`` or ``root``, whichever holds all seven files."""
    for folder in (root / CIFAR_FOLDER, root):
        if all((folder / name).is_file() for name in _ALL_FILES):
            return folder
    return None


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 batch as uint8 images (N, 3, 32, 32) and int64 labels (N,).

    Raises:
        DataError: the file is not a CIFAR-10 batch.
    """
    entry = _load_pickle(path)
    data, labels = _get(entry, "data"), _get(entry, "labels")
    data = np.asarray(data) if data is not None else None
    if data is None or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        shape = None if data is None else (data.dtype, data.shape)
        raise DataError(
            f"{path} is not a CIFAR-10 batch: its 'data' is {shape}, expected uint8 (N, 3072). "
            "Re-extract cifar-10-python.tar.gz."
        )
    y = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if y.shape != (data.shape[0],) or (y.size and (y.min() < 0 or y.max() > 9)):
        raise DataError(
            f"{path} has {y.size} labels in [{y.min() if y.size else '-'}, "
            f"{y.max() if y.size else '-'}] for {data.shape[0]} images; expected one label "
            "in 0..9 per image. Re-extract cifar-10-python.tar.gz."
        )
    return data.reshape(-1, 3, 32, 32), y  # (N, 3, 32, 32), (N,)


def read_cifar_meta(path: Path) -> tuple[str, ...]:
    """Read the ten class names from ``batches.meta``.

    Raises:
        DataError: the file has no ten ``label_names``.
    """
    names = _get(_load_pickle(path), "label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise DataError(
            f"{path} has label_names {names!r}; expected a list of 10 class names. "
            "Re-extract cifar-10-python.tar.gz."
        )
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)


def _read(folder: Path) -> LoadedDataset:
    parts = [read_cifar_batch(folder / name) for name in CIFAR_TRAIN_BATCHES]
    train_x = np.concatenate([x for x, _ in parts])
    train_y = np.concatenate([y for _, y in parts])
    test_x, test_y = read_cifar_batch(folder / CIFAR_TEST_BATCH)
    class_names = read_cifar_meta(folder / CIFAR_META)
    mean, std = channel_stats_uint8(train_x)
    info = DatasetInfo(
        name="cifar10",
        channels=3,
        image_size=(32, 32),
        num_classes=10,
        class_names=class_names,
        mean=mean,
        std=std,
        train_size=len(train_y),
        test_size=len(test_y),
        source=str(folder),
        licence=_LICENCE,
    )
    train = TensorSplit.from_uint8(train_x, train_y, mean, std)
    test = TensorSplit.from_uint8(test_x, test_y, mean, std)
    return LoadedDataset(info, train, test)


def _missing_files_error(root: Path) -> DataError:
    best = max(
        (root / CIFAR_FOLDER, root), key=lambda f: sum((f / n).is_file() for n in _ALL_FILES)
    )
    missing = [name for name in _ALL_FILES if not (best / name).is_file()]
    return DataError(
        f"{_TITLE} files not found in {root / CIFAR_FOLDER} (nor in {root}): missing "
        f"{', '.join(missing)}. {_OFFLINE_HINT.format(dir=root)}; or pass --download to "
        "fetch it with torchvision when online."
    )


def _download(root: Path) -> None:
    """Fetch and extract cifar-10-python.tar.gz into ``root`` with torchvision's own code."""
    from torchvision.datasets import CIFAR10  # slow import: only to download
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(
            CIFAR10.url, str(root), filename=CIFAR10.filename, md5=CIFAR10.tgz_md5
        )
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError, tarfile errors
        raise download_error(_TITLE, root, exc, _OFFLINE_HINT.format(dir=root)) from exc


def _get(entry: Any, key: str) -> Any:
    """Return ``entry[key]`` whether the pickle's keys are bytes (Python 2) or str."""
    if not isinstance(entry, dict):
        return None
    return entry.get(key.encode("ascii"), entry.get(key))


# The only globals a CIFAR-10 pickle needs: NumPy's array rebuilders, and _codecs.encode
# which Python 3 uses for bytes in protocol-2 pickles.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("multiarray", "_reconstruct"),
    ("multiarray", "scalar"),
    ("numeric", "_frombuffer"),
    ("_codecs", "encode"),
}
_NUMPY_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds NumPy arrays and refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        head, _, tail = module.rpartition(".")
        if head in ("numpy.core", "numpy._core") and (tail, name) in _ALLOWED_GLOBALS:
            return super().find_class(f"{_NUMPY_CORE}.{tail}", name)
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR batch")


def _load_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return _ArrayUnpickler(f, encoding="bytes").load()
    except OSError as exc:
        raise DataError(f"cannot read CIFAR-10 file {path}: {exc.strerror or exc}.") from exc
    except Exception as exc:  # unpickling raises many types on a bad file
        raise DataError(
            f"{path} is not a readable CIFAR-10 pickle ({exc}). Re-extract cifar-10-python.tar.gz."
        ) from exc

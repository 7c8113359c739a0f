"""``fashion-mnist-mini``, the default dataset: real Fashion-MNIST images shipped in the package.

A balanced subset (1,280 images per class for train, 200 for test), xz-compressed, built
from the original files by ``scripts/build_fashion_mnist_mini.py``. Its sha256 ships beside
it and is checked on every load. Fashion-MNIST is MIT-licensed, (c) 2017 Zalando SE: see
``assets/FASHION-MNIST-LICENSE.txt`` and ``assets/FASHION-MNIST-CITATION.txt``.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import zipfile
from importlib import resources

import numpy as np

from gradsight.data.base import DatasetInfo, LoadedDataset, TensorSplit, channel_stats_uint8
from gradsight.data.mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_LICENCE
from gradsight.errors import DataError

__all__ = ["MINI_NAME", "MINI_NPZ", "MINI_SHA256", "load_fashion_mnist_mini", "read_mini_npz"]

MINI_NAME = "fashion-mnist-mini"
MINI_NPZ = "fashion-mnist-mini.npz.xz"
MINI_SHA256 = "fashion-mnist-mini.sha256"
_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
_REBUILD_HINT = (
    "Reinstall gradsight, or rebuild it with scripts/build_fashion_mnist_mini.py "
    "(needs apt-get install dataset-fashion-mnist)."
)


def load_fashion_mnist_mini() -> LoadedDataset:
    """Load the bundled Fashion-MNIST subset (28x28 grey, 10 classes) into memory, normalised.

    Returns:
        12,800 train and 2,000 test images (N, 1, 28, 28), exactly 1,280 and 200 per class.

    Raises:
        DataError: the bundled file is missing or fails its sha256 check.
    """
    assets = resources.files("gradsight.data").joinpath("assets")
    try:
        data = assets.joinpath(MINI_NPZ).read_bytes()
        expected = assets.joinpath(MINI_SHA256).read_text(encoding="ascii").split()[0]
    except (OSError, IndexError) as exc:
        raise DataError(
            f"the bundled dataset file gradsight/data/assets/{MINI_NPZ} or its .sha256 is "
            f"missing or empty ({exc}). {_REBUILD_HINT}"
        ) from exc
    return read_mini_npz(data, expected, source=f"gradsight/data/assets/{MINI_NPZ}")


def read_mini_npz(data: bytes, expected_sha256: str, *, source: str) -> LoadedDataset:
    """Check ``data`` against its sha256 and turn the ``.npz`` into a normalised dataset.

    Args:
        data: the bytes of an xz-compressed ``.npz`` with uint8 ``train_images`` (N, 28, 28),
            ``train_labels``
            (N,), ``test_images`` and ``test_labels``.
        expected_sha256: the hex digest ``data`` must have.
        source: where the bytes came from, for messages and ``DatasetInfo.source``.

    Raises:
        DataError: the digest differs, or the archive lacks an array or holds a bad one.
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256.lower():
        raise DataError(
            f"{source} is corrupted: its sha256 is {actual}, expected {expected_sha256}. "
            f"{_REBUILD_HINT}"
        )
    arrays = _arrays(data, source)
    train_x, test_x = arrays["train_images"][:, None], arrays["test_images"][:, None]  # (N,1,H,W)
    mean, std = channel_stats_uint8(train_x)
    info = DatasetInfo(
        name=MINI_NAME,
        channels=1,
        image_size=(int(train_x.shape[2]), int(train_x.shape[3])),
        num_classes=len(FASHION_MNIST_CLASSES),
        class_names=FASHION_MNIST_CLASSES,
        mean=mean,
        std=std,
        train_size=len(train_x),
        test_size=len(test_x),
        source=source,
        licence=FASHION_MNIST_LICENCE,
    )
    train = TensorSplit.from_uint8(train_x, arrays["train_labels"], mean, std)
    test = TensorSplit.from_uint8(test_x, arrays["test_labels"], mean, std)
    return LoadedDataset(info, train, test)


def _arrays(data: bytes, source: str) -> dict[str, np.ndarray]:
    """Read the four arrays, checking their dtypes and that images and labels agree."""
    try:
        with np.load(io.BytesIO(lzma.decompress(data)), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in _KEYS}
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise DataError(
            f"{source} is not a fashion-mnist-mini archive with arrays {', '.join(_KEYS)} "
            f"({exc}). {_REBUILD_HINT}"
        ) from exc
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim != 3 or labels.shape != (len(images),):
            raise DataError(
                f"{source}: {split}_images is {images.dtype} {images.shape} and {split}_labels "
                f"is {labels.shape}; expected uint8 (N, 28, 28) and (N,). {_REBUILD_HINT}"
            )
    return arrays

"""Fashion-MNIST and MNIST from their four IDX files, found on disk or fetched by torchvision."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gradsight.data.base import DatasetInfo, LoadedDataset, TensorSplit, channel_stats_uint8
from gradsight.data.idx import read_idx
from gradsight.data.storage import download_error, resolve_root
from gradsight.errors import DataError

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_LICENCE",
    "MNIST_FILES",
    "MNIST_VARIANTS",
    "MnistVariant",
    "find_mnist_files",
    "load_mnist",
]

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST_LICENCE = "MIT, (c) 2017 Zalando SE; cite Xiao et al. 2017 (arXiv:1708.07747)"


@dataclass(frozen=True)
class MnistVariant:
    """One dataset stored in the MNIST file layout."""

    name: str  # gradsight's name, e.g. "fashion-mnist"
    title: str  # display name, e.g. "Fashion-MNIST"
    torchvision_class: str  # also the folder torchvision downloads into: root/<class>/raw
    class_names: tuple[str, ...]
    licence: str | None
    offline_hint: str  # how to get the files without network; "{dir}" is the data dir


MNIST_VARIANTS = {
    "fashion-mnist": MnistVariant(
        name="fashion-mnist",
        title="Fashion-MNIST",
        torchvision_class="FashionMNIST",
        class_names=FASHION_MNIST_CLASSES,
        licence=FASHION_MNIST_LICENCE,
        offline_hint=(
            "To get the files offline: on Debian, apt-get install dataset-fashion-mnist and pass "
            "--data-dir /usr/share/datasets/fashion-mnist"
        ),
    ),
    "mnist": MnistVariant(
        name="mnist",
        title="MNIST",
        torchvision_class="MNIST",
        class_names=tuple(str(d) for d in range(10)),
        licence="CC BY-SA 3.0, Y. LeCun, C. Cortes and C. J. C. Burges",
        offline_hint=(
            "To get the files offline, copy the four MNIST files (optionally .gz) into {dir}"
        ),
    ),
}


def load_mnist(
    name: str, *, data_dir: str | Path | None = None, download: bool | None = None
) -> LoadedDataset:
    """Load Fashion-MNIST or MNIST (28x28 grey, 10 classes) into memory, normalised.

    Files are looked for directly in the folder and in torchvision's layout
    ``<folder>/FashionMNIST/raw/`` (or ``MNIST/raw/``), each optionally gzipped. Missing files
    are fetched with torchvision's own downloader when downloading is allowed.

    Args:
        name: ``"fashion-mnist"`` or ``"mnist"``.
        data_dir: the folder holding the files; ``None`` uses :func:`default_cache_dir`.
        download: fetch missing files; defaults to ``True`` for the cache, ``False`` for a
            given ``data_dir``.

    Returns:
        60,000 train and 10,000 test images (N, 1, 28, 28) for the full datasets.

    Raises:
        DataError: the folder or files are missing and not downloaded, the download fails,
            or a file is corrupted.
    """
    variant = MNIST_VARIANTS.get(name)
    if variant is None:
        valid = ", ".join(MNIST_VARIANTS)
        raise DataError(f"unknown MNIST-style dataset '{name}'. Valid names: {valid}.")
    root = resolve_root(data_dir, download)
    files = find_mnist_files(root.path, variant.torchvision_class)
    if files is None:
        if not root.download:
            raise _missing_files_error(variant, root.path)
        _download(variant, root.path)
        files = find_mnist_files(root.path, variant.torchvision_class)
        if files is None:
            raise _missing_files_error(variant, root.path)
    return _read(variant, files)


def find_mnist_files(root: Path, torchvision_class: str) -> dict[str, Path] | None:
    """Return the four IDX files by stem, from ``root`` or ``root/<class>/raw``, or ``None``.

    An uncompressed file is preferred over its ``.gz`` when both are present.
    """
    for folder in (root, root / torchvision_class / "raw"):
        found = _files_in(folder)
        if len(found) == len(MNIST_FILES):
            return found
    return None


def _files_in(folder: Path) -> dict[str, Path]:
    found = {}
    for stem in MNIST_FILES:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[stem] = candidate
                break
    return found


def _missing_files_error(variant: MnistVariant, root: Path) -> DataError:
    tv_folder = root / variant.torchvision_class / "raw"
    best = max((root, tv_folder), key=lambda folder: len(_files_in(folder)))
    missing = [f"{stem}[.gz]" for stem in MNIST_FILES if stem not in _files_in(best)]
    return DataError(
        f"{variant.title} files not found in {root} (nor in {tv_folder}): missing "
        f"{', '.join(missing)}. {variant.offline_hint.format(dir=root)}; or pass --download "
        "to fetch them with torchvision when online."
    )


def _download(variant: MnistVariant, root: Path) -> None:
    """Fetch the four files into ``root/<class>/raw`` with torchvision's own downloader."""
    import torchvision.datasets  # slow import: only to download

    dataset_class = getattr(torchvision.datasets, variant.torchvision_class)
    try:
        dataset_class(str(root), train=True, download=True)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError...
        raise download_error(
            variant.title, root, exc, variant.offline_hint.format(dir=root)
        ) from exc


def _read(variant: MnistVariant, files: dict[str, Path]) -> LoadedDataset:
    train_x, train_y = _read_pair(
        files["train-images-idx3-ubyte"], files["train-labels-idx1-ubyte"]
    )
    test_x, test_y = _read_pair(files["t10k-images-idx3-ubyte"], files["t10k-labels-idx1-ubyte"])
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(
            f"train images are {train_x.shape[2:]} but test images are {test_x.shape[2:]} in "
            f"{files['train-images-idx3-ubyte'].parent}; the files come from different datasets."
        )
    num_classes = len(variant.class_names)
    _check_labels(train_y, files["train-labels-idx1-ubyte"], variant)
    _check_labels(test_y, files["t10k-labels-idx1-ubyte"], variant)
    mean, std = channel_stats_uint8(train_x)
    info = DatasetInfo(
        name=variant.name,
        channels=1,
        image_size=(int(train_x.shape[2]), int(train_x.shape[3])),
        num_classes=num_classes,
        class_names=variant.class_names,
        mean=mean,
        std=std,
        train_size=len(train_y),
        test_size=len(test_y),
        source=str(files["train-images-idx3-ubyte"].parent),
        licence=variant.licence,
    )
    train = TensorSplit.from_uint8(train_x, train_y, mean, std)
    test = TensorSplit.from_uint8(test_x, test_y, mean, std)
    return LoadedDataset(info, train, test)


def _check_labels(labels: np.ndarray, path: Path, variant: MnistVariant) -> None:
    num_classes = len(variant.class_names)
    if labels.size and int(labels.max()) >= num_classes:
        raise DataError(
            f"{path} has label {int(labels.max())}; {variant.title} labels are 0 to "
            f"{num_classes - 1}. The file belongs to another dataset or is corrupted."
        )


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one images/labels pair as uint8 (N, 1, H, W) and (N,), checking they agree."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(
            f"{images_path} holds {images.dtype} of shape {images.shape}; expected uint8 "
            "images (N, H, W). Check that the images and labels files are not swapped."
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{labels_path} holds {labels.dtype} of shape {labels.shape}; expected uint8 "
            "labels (N,). Check that the images and labels files are not swapped."
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} "
            "labels; the files come from different releases. Re-download them."
        )
    return images[:, None], labels  # (N, 1, H, W), (N,)

"""Pick a dataset by name: the one entry point the training loop and the CLI use."""

from __future__ import annotations

import difflib
from pathlib import Path

from gradsight.data.base import LoadedDataset
from gradsight.errors import DataError

__all__ = [
    "DATASET_NAMES",
    "DEFAULT_DATASET",
    "FOLDER_PREFIX",
    "NATIVE_IMAGE_SIZES",
    "load_dataset",
]

DEFAULT_DATASET = "fashion-mnist-mini"
FOLDER_PREFIX = "folder:"
DATASET_NAMES = (
    "fashion-mnist-mini",
    "fashion-mnist",
    "mnist",
    "cifar10",
    "synthetic",
    f"{FOLDER_PREFIX}PATH",
)
NATIVE_IMAGE_SIZES = {"fashion-mnist-mini": 28, "fashion-mnist": 28, "mnist": 28, "cifar10": 32}


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    image_size: int | None = None,
    download: bool | None = None,
    seed: int = 0,
    skip_bad_images: bool = False,
) -> LoadedDataset:
    """Load the dataset called ``name`` with normalised train and test splits.

    Args:
        name: one of :data:`DATASET_NAMES`; ``folder:PATH`` reads your own image folder.
        data_dir: where ``fashion-mnist``, ``mnist`` and ``cifar10`` files are; ``None`` uses
            :func:`~gradsight.data.storage.default_cache_dir`. Other datasets ignore it.
        image_size: side of the square images for ``folder:`` and ``synthetic``; the other
            datasets accept only their own size (28, or 32 for ``cifar10``).
        download: fetch missing files with torchvision; defaults to ``True`` without
            ``data_dir`` and ``False`` with it. Only the downloadable datasets use it.
        seed: seeds ``synthetic`` data and the 80/20 split of an unsplit ``folder:``.
        skip_bad_images: ``folder:`` only: leave unreadable image files out, with one warning
            each, instead of refusing the folder. Other datasets ignore it.

    Returns:
        The dataset's info and its train and test splits.

    Raises:
        DataError: the name is unknown, ``image_size`` does not apply, or the data cannot
            be found, read or downloaded.

    Example:
        >>> ds = load_dataset("synthetic", seed=1)
        >>> ds.info.num_classes, len(ds.train), len(ds.test)
        (10, 512, 128)
    """
    if name.startswith(FOLDER_PREFIX):
        path = name[len(FOLDER_PREFIX) :]
        if not path:
            raise DataError(
                f"dataset '{name}' names no folder; write folder:PATH, e.g. folder:data/flowers."
            )
        from gradsight.data.folder import load_folder  # imports torchvision: slow

        return load_folder(path, image_size=image_size, seed=seed, skip_bad_images=skip_bad_images)
    if name == "synthetic":
        from gradsight.data.synthetic import load_synthetic

        return load_synthetic(image_size=image_size, seed=seed)
    if name not in NATIVE_IMAGE_SIZES:
        raise _unknown_name_error(name)
    _check_native_size(name, image_size)
    if name == "fashion-mnist-mini":
        from gradsight.data.bundled import load_fashion_mnist_mini

        return load_fashion_mnist_mini()
    if name == "cifar10":
        from gradsight.data.cifar import load_cifar10

        return load_cifar10(data_dir=data_dir, download=download)
    from gradsight.data.mnist import load_mnist

    return load_mnist(name, data_dir=data_dir, download=download)


def _check_native_size(name: str, image_size: int | None) -> None:
    native = NATIVE_IMAGE_SIZES[name]
    if image_size is not None and image_size != native:
        raise DataError(
            f"image size {image_size} does not apply to '{name}', whose images are "
            f"{native}x{native}; image size only applies to folder:PATH and synthetic. "
            f"Drop it or set it to {native}."
        )


def _unknown_name_error(name: str) -> DataError:
    message = f"unknown dataset '{name}'. Valid datasets: {', '.join(DATASET_NAMES)}"
    close = difflib.get_close_matches(name.lower(), DATASET_NAMES[:-1], n=1)
    if close:
        message += f". Did you mean '{close[0]}'?"
    return DataError(message)

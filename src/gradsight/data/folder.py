"""``folder:PATH``: your own images, one subfolder per class, streamed from disk.

This module imports torchvision (slow to import), so the registry imports it only when a
``folder:`` dataset is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset
from torchvision import transforms
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from gradsight.data.base import DatasetInfo, LoadedDataset
from gradsight.data.stream import StreamSplit
from gradsight.errors import DataError

__all__ = ["DEFAULT_FOLDER_IMAGE_SIZE", "FOLDER_MEAN", "FOLDER_STD", "TEST_FRACTION", "load_folder"]

DEFAULT_FOLDER_IMAGE_SIZE = 32
FOLDER_MEAN = (0.5, 0.5, 0.5)
FOLDER_STD = (0.5, 0.5, 0.5)
TEST_FRACTION = 0.2
_TEST_NAMES = ("test", "val")


def load_folder(
    path: str | Path, *, image_size: int | None = None, seed: int = 0, num_workers: int = 0
) -> LoadedDataset:
    """Load an image folder as RGB images resized to ``image_size`` square, streamed in batches.

    With ``PATH/train/`` and ``PATH/test/`` (or ``PATH/val/``) those are the splits; otherwise
    each class is split 80/20 into train/test, the same way for the same ``seed``.

    Args:
        path: the folder; its subfolders are the classes (sorted by name, hidden ones skipped).
        image_size: side of the square images the model sees; default 32.
        seed: seeds the 80/20 split.
        num_workers: ``DataLoader`` worker processes; 0 decodes images in this process.

    Returns:
        A dataset whose splits decode images on the fly, normalised with mean = std = 0.5.

    Raises:
        DataError: the folder is missing, has fewer than 2 class subfolders, a class has no
            images, or train and test classes differ.
    """
    spec = f"folder:{path}"
    root = Path(path).expanduser()
    size = DEFAULT_FOLDER_IMAGE_SIZE if image_size is None else image_size
    if size < 1:
        raise DataError(f"image size {size} for {spec} must be a positive number of pixels.")
    if not root.is_dir():
        raise DataError(
            f"{spec}: {root} does not exist or is not a folder. Pass a folder that holds "
            "one subfolder of images per class, e.g. folder:data/flowers."
        )
    classes, train_ds, test_ds = _splits(root, _transform(size), seed, spec)
    train = StreamSplit(train_ds, num_workers=num_workers)
    test = StreamSplit(test_ds, num_workers=num_workers)
    info = DatasetInfo(
        name=spec,
        channels=3,
        image_size=(size, size),
        num_classes=len(classes),
        class_names=tuple(classes),
        mean=FOLDER_MEAN,
        std=FOLDER_STD,
        train_size=len(train),
        test_size=len(test),
        source=str(root.resolve()),
    )
    return LoadedDataset(info, train, test)


def _splits(
    root: Path, transform: Callable[[Any], torch.Tensor], seed: int, spec: str
) -> tuple[list[str], Dataset[Any], Dataset[Any]]:
    """Return the class names and the train and test datasets of ``root``."""
    split_dirs = _split_dirs(root)
    if split_dirs is None:
        full = _image_folder(root, transform, spec)
        train_idx, test_idx = _stratified_split(full.targets, seed, spec)
        return full.classes, Subset(full, train_idx), Subset(full, test_idx)
    train = _image_folder(split_dirs[0], transform, spec)
    test = _image_folder(split_dirs[1], transform, spec)
    if test.classes != train.classes:
        raise DataError(
            f"{spec}: train classes {train.classes} differ from {split_dirs[1].name} "
            f"classes {test.classes}. Give both the same class subfolders."
        )
    return train.classes, train, test


def _split_dirs(root: Path) -> tuple[Path, Path] | None:
    """Return ``(train, test)`` folders when ``root`` is already split, else ``None``."""
    if not (root / "train").is_dir():
        return None
    for name in _TEST_NAMES:
        if (root / name).is_dir():
            return root / "train", root / name
    return None


def _transform(size: int) -> Callable[[Any], torch.Tensor]:
    return transforms.Compose(
        [
            transforms.Resize((size, size)),
            transforms.ToTensor(),  # (C, H, W) float32 in [0, 1]
            transforms.Normalize(FOLDER_MEAN, FOLDER_STD),
        ]
    )


class _VisibleImageFolder(ImageFolder):
    """``ImageFolder`` that skips hidden subfolders such as ``.ipynb_checkpoints``."""

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        classes = _class_names(Path(directory))
        return classes, {name: i for i, name in enumerate(classes)}


def _image_folder(
    folder: Path, transform: Callable[[Any], torch.Tensor], spec: str
) -> _VisibleImageFolder:
    """Build an ``ImageFolder`` over ``folder``, checking its classes and images."""
    classes = _class_names(folder)
    if not classes:
        raise DataError(
            f"{spec} has no class subfolders; expected {folder}/<class>/<image>.png, one "
            "subfolder per class (or train/ and test/ folders laid out that way)."
        )
    if len(classes) < 2:
        raise DataError(
            f"{spec} has 1 class subfolder ({classes[0]!r}) in {folder}; a classifier needs at "
            "least 2. Add a subfolder of images per class."
        )

    dataset = _VisibleImageFolder(str(folder), transform=transform, allow_empty=True)
    counts = torch.bincount(
        torch.tensor(dataset.targets, dtype=torch.int64), minlength=len(classes)
    )
    empty = [name for name, n in zip(classes, counts.tolist(), strict=True) if n == 0]
    if empty:
        what = "no images" if len(empty) == len(classes) else f"no images in {', '.join(empty)}"
        raise DataError(
            f"{spec} has {what} under {folder}. Supported image extensions: "
            f"{', '.join(IMG_EXTENSIONS)}."
        )
    return dataset


def _class_names(folder: Path) -> list[str]:
    """Return the visible subfolder names of ``folder``, sorted."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _stratified_split(targets: list[int], seed: int, spec: str) -> tuple[list[int], list[int]]:
    """Split sample indices 80/20 within each class, shuffled by ``seed``.

    A class with n >= 2 images puts ``max(1, round(0.2 * n))`` of them in test.
    """
    labels = torch.tensor(targets, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    train: list[int] = []
    test: list[int] = []
    for c in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == c).flatten()
        idx = members[torch.randperm(len(members), generator=generator)].tolist()
        n_test = max(1, round(TEST_FRACTION * len(idx))) if len(idx) >= 2 else 0
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    if not test:
        raise DataError(
            f"{spec} has too few images to hold out a test split (1 per class); add images, "
            "or give train/ and test/ subfolders."
        )
    return sorted(train), sorted(test)

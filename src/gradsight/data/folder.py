"""``folder:PATH``: your own images, one subfolder per class, streamed from disk.

Every image is checked when the dataset is loaded, before any training, so a corrupt file
is named up front (or skipped on request) instead of failing mid-epoch.

This module imports torchvision (slow to import), so the registry imports it only when a
``folder:`` dataset is asked for.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
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


@dataclass(frozen=True)
class _Reading:
    """How one ``folder:`` dataset is read: its name, root, image side and bad-file policy."""

    spec: str  # "folder:PATH", as the user wrote it
    root: Path
    size: int
    skip_bad_images: bool


def load_folder(
    path: str | Path,
    *,
    image_size: int | None = None,
    seed: int = 0,
    num_workers: int = 0,
    skip_bad_images: bool = False,
) -> LoadedDataset:
    """Load an image folder as RGB images resized to ``image_size`` square, streamed in batches.

    With ``PATH/train/`` and ``PATH/test/`` (or ``PATH/val/``) those are the splits; otherwise
    each class is split 80/20 into train/test, the same way for the same ``seed``. Every image
    file is checked first (a quick look, and a full decode where that look is not enough), so
    a corrupt one fails here, not mid-training.

    Args:
        path: the folder; its subfolders are the classes (sorted by name, hidden ones skipped).
        image_size: side of the square images the model sees; default 32.
        seed: seeds the 80/20 split.
        num_workers: ``DataLoader`` worker processes; 0 decodes images in this process.
        skip_bad_images: leave unreadable image files out, with one warning each, instead of
            refusing the folder; ``info.skipped_images`` counts them.

    Returns:
        A dataset whose splits decode images on the fly, normalised with mean = std = 0.5.

    Raises:
        DataError: the folder is missing, has fewer than 2 class subfolders, a class has no
            images, train and test classes differ, or (without ``skip_bad_images``) an image
            file cannot be read.
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
    reading = _Reading(spec, root, size, skip_bad_images)
    classes, train_ds, test_ds, skipped = _splits(reading, seed)
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
        skipped_images=skipped,
    )
    return LoadedDataset(info, train, test)


def _splits(reading: _Reading, seed: int) -> tuple[list[str], Dataset[Any], Dataset[Any], int]:
    """Return the class names, the train and test datasets, and how many files were skipped."""
    spec = reading.spec
    split_dirs = _split_dirs(reading.root)
    folders = (reading.root,) if split_dirs is None else split_dirs
    datasets = [_image_folder(folder, spec, reading.size) for folder in folders]
    if split_dirs is not None and datasets[1].classes != datasets[0].classes:
        raise DataError(
            f"{spec}: train classes {datasets[0].classes} differ from {split_dirs[1].name} "
            f"classes {datasets[1].classes}. Give both the same class subfolders."
        )
    for folder, dataset in zip(folders, datasets, strict=True):
        _require_images(dataset, folder, spec, skipped=0)  # before reading any image
    skipped = _drop_unreadable(datasets, reading)
    if skipped:  # a class may have held only unreadable files
        for folder, dataset in zip(folders, datasets, strict=True):
            _require_images(dataset, folder, spec, skipped)
    if split_dirs is None:
        full = datasets[0]
        train_idx, test_idx = _stratified_split(full.targets, seed, spec)
        return full.classes, Subset(full, train_idx), Subset(full, test_idx), skipped
    return datasets[0].classes, datasets[0], datasets[1], skipped


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


def _image_folder(folder: Path, spec: str, size: int) -> _VisibleImageFolder:
    """Build an ``ImageFolder`` over ``folder``, checking that it has at least 2 classes."""
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
    return _VisibleImageFolder(str(folder), transform=_transform(size), allow_empty=True)


def _require_images(dataset: _VisibleImageFolder, folder: Path, spec: str, skipped: int) -> None:
    """Refuse ``dataset`` when one of its classes has no images (left)."""
    classes = dataset.classes
    counts = torch.bincount(
        torch.tensor(dataset.targets, dtype=torch.int64), minlength=len(classes)
    )
    empty = [name for name, n in zip(classes, counts.tolist(), strict=True) if n == 0]
    if empty:
        what = "no images" if len(empty) == len(classes) else f"no images in {', '.join(empty)}"
        fix = f"Supported image extensions: {', '.join(IMG_EXTENSIONS)}."
        if skipped:
            were = "image was" if skipped == 1 else "images were"
            fix = f"{skipped} unreadable {were} skipped; replace them with readable ones."
        raise DataError(f"{spec} has {what} under {folder}. {fix}")


def _drop_unreadable(datasets: list[_VisibleImageFolder], reading: _Reading) -> int:
    """Check every image of ``datasets``; refuse them, or leave bad files out with a warning.

    Returns:
        How many files were left out.

    Raises:
        DataError: a file cannot be read and ``reading.skip_bad_images`` is off; the message
            names the first such file (relative to the ``folder:`` root) and the fix.
    """
    bad: dict[str, str] = {}  # path -> why it cannot be read, in ImageFolder's sorted order
    for dataset in datasets:
        for path, _ in dataset.samples:
            reason = _unreadable_reason(Path(path))
            if reason is not None:
                bad[path] = reason
    if not bad:
        return 0
    names = {path: Path(os.path.relpath(path, reading.root)).as_posix() for path in bad}
    if not reading.skip_bad_images:
        first = next(iter(bad))
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        them = "them" if len(bad) > 1 else "it"
        raise DataError(
            f"{reading.spec}: cannot read image '{names[first]}' ({bad[first]}){more}; "
            f"remove or replace {them}, or pass --skip-bad-images"
        )
    for path, reason in bad.items():
        warnings.warn(
            f"{reading.spec}: skipping unreadable image '{names[path]}' ({reason})",
            UserWarning,
            stacklevel=2,
        )
    for dataset in datasets:
        kept = [sample for sample in dataset.samples if sample[0] not in bad]
        dataset.samples = dataset.imgs = kept
        dataset.targets = [target for _, target in kept]
    return len(bad)


def _unreadable_reason(path: Path) -> str | None:
    """Return why ``path`` cannot be decoded as training decodes it, or ``None`` when it can.

    A quick look settles almost every file: a PNG whose chunks are all there with their
    CRCs, a JPEG that ends with its end-of-image marker. Any other file is decoded in full,
    as training would, so only a file that truly fails is named.
    """
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path) as image:
            if _looks_whole(image, path):
                return None
        with Image.open(path) as image:
            image.convert("RGB")  # what torchvision's pil_loader does with every image
    except UnidentifiedImageError:  # before OSError, its base class
        return "cannot identify image file"
    except OSError as exc:
        return exc.strerror or _one_line(exc)  # strerror: "Permission denied", ...
    except Exception as exc:  # PIL's decoders also raise SyntaxError, ValueError, ...
        return _one_line(exc)
    return None


def _looks_whole(image: Image.Image, path: Path) -> bool:
    """Return whether a cheap look finds ``image`` complete; ``False``: decode it to be sure."""
    if image.format == "PNG":
        try:
            image.verify()  # reads every chunk and checks its CRC, without decompressing
        except Exception:
            return False
        return True
    if image.format == "JPEG":
        with path.open("rb") as file:
            file.seek(-2, os.SEEK_END)
            return file.read(2) == b"\xff\xd9"  # a file cut short lacks its end marker
    return False


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


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

"""Build fashion-mnist-mini.npz.xz, the Fashion-MNIST subset bundled with gradsight.

Takes a balanced random subset of the real Fashion-MNIST (1,280 images per class from train,
so 12,800 = 200 whole batches of 64, and 200 per class from test), writes it as an
xz-compressed ``.npz`` whose bytes depend only on the inputs and the seed, and writes its
sha256 beside it for ``gradsight.data.bundled`` to check. xz packs these images about 15%
smaller than the zip deflate of ``np.savez_compressed``, which is what lets 12,800 training
images fit the 6 MB budget.

Run from the repository root, with the package installed or ``PYTHONPATH=src``::

    apt-get install dataset-fashion-mnist
    python scripts/build_fashion_mnist_mini.py
"""

from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import sys
import zipfile
from pathlib import Path

import numpy as np

from gradsight.data.idx import read_idx

DEFAULT_SRC = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_OUT = Path("src/gradsight/data/assets/fashion-mnist-mini.npz.xz")
TRAIN_PER_CLASS = 1280
TEST_PER_CLASS = 200
NUM_CLASSES = 10
MAX_BYTES = 6_000_000
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed time stamp, so the same arrays give the same bytes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="folder with the 4 IDX files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .npz to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset choice")
    return parser.parse_args(argv)


def find_file(src: Path, stem: str) -> Path:
    """Return ``src/stem`` or ``src/stem.gz``, whichever exists."""
    for candidate in (src / stem, src / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"error: {src} has no {stem}[.gz]; apt-get install dataset-fashion-mnist?")


def balanced_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Pick ``per_class`` indices of each class at random; return them sorted."""
    picks = []
    for c in range(NUM_CLASSES):
        pool = np.flatnonzero(labels == c)
        if len(pool) < per_class:
            raise SystemExit(f"error: class {c} has {len(pool)} images, fewer than {per_class}")
        picks.append(rng.choice(pool, size=per_class, replace=False))
    return np.sort(np.concatenate(picks))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Return an xz-compressed ``.npz`` of ``arrays``, byte-reproducible.

    The zip inside stores its members uncompressed, so xz sees the raw pixels.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    preset = 9 | lzma.PRESET_EXTREME
    return lzma.compress(buffer.getvalue(), format=lzma.FORMAT_XZ, preset=preset)


def build(src: Path, seed: int) -> dict[str, np.ndarray]:
    """Read Fashion-MNIST from ``src`` and return the balanced subset's four arrays."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, stem, per_class in (
        ("train", "train", TRAIN_PER_CLASS),
        ("test", "t10k", TEST_PER_CLASS),
    ):
        images = read_idx(find_file(src, f"{stem}-images-idx3-ubyte"))  # (N, 28, 28) uint8
        labels = read_idx(find_file(src, f"{stem}-labels-idx1-ubyte"))  # (N,) uint8
        keep = balanced_subset(labels, per_class, rng)
        arrays[f"{split}_images"] = images[keep]
        arrays[f"{split}_labels"] = labels[keep]
    return arrays


def main(argv: list[str] | None = None) -> int:
    """Build the subset, refuse it if too large, write it and its sha256."""
    args = parse_args(argv)
    data = npz_bytes(build(args.src, args.seed))
    if len(data) > MAX_BYTES:
        print(f"error: {len(data):,} bytes is over the {MAX_BYTES:,} limit; nothing written")
        return 1
    digest = hashlib.sha256(data).hexdigest()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    sha_path = args.out.parent / "fashion-mnist-mini.sha256"
    sha_path.write_text(f"{digest}  {args.out.name}\n")
    print(f"wrote {args.out} ({len(data):,} bytes, {len(data) / 1e6:.2f} MB)")
    print(f"sha256 {digest} -> {sha_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

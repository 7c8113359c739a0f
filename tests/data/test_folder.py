from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gradsight.data import StreamSplit, load_dataset
from gradsight.data.folder import load_folder
from gradsight.errors import DataError

from .fakes import write_pngs

RED, GREEN, BLUE, GREY = (255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128)


def _three_classes(root: Path, per_class: int = 5) -> None:
    write_pngs(root / "apple", [RED] * per_class)
    write_pngs(root / "leaf", [GREEN] * per_class)
    write_pngs(root / "sky", [BLUE] * per_class)


def _labels(split: object) -> list[int]:
    assert isinstance(split, StreamSplit)
    return [y for _, ys in split.batches(64, shuffle=False) for y in ys.tolist()]


def test_auto_split_is_80_20_per_class(tmp_path: Path) -> None:
    _three_classes(tmp_path)
    ds = load_dataset(f"folder:{tmp_path}", image_size=8)
    assert ds.info.class_names == ("apple", "leaf", "sky")
    assert (ds.info.channels, ds.info.image_size, ds.info.num_classes) == (3, (8, 8), 3)
    assert (ds.info.train_size, ds.info.test_size) == (12, 3)
    assert ds.info.mean == (0.5, 0.5, 0.5) and ds.info.std == (0.5, 0.5, 0.5)
    assert ds.info.name == f"folder:{tmp_path}"
    assert sorted(_labels(ds.train)) == [0] * 4 + [1] * 4 + [2] * 4
    assert sorted(_labels(ds.test)) == [0, 1, 2]


def test_images_are_resized_rgb_normalised_to_minus_one_one(tmp_path: Path) -> None:
    _three_classes(tmp_path)
    write_pngs(tmp_path / "sky", [GREY], mode="L")  # overwrites img0 with a grey image
    ds = load_dataset(f"folder:{tmp_path}", image_size=8)
    x, y = next(iter(ds.train.batches(64, shuffle=False)))
    assert x.shape == (12, 3, 8, 8) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    red = x[y == 0][0]
    assert torch.allclose(red[0], torch.ones(8, 8)) and torch.allclose(
        red[1:], -torch.ones(2, 8, 8)
    )
    x_test, y_test = next(iter(ds.test.batches(64, shuffle=False)))
    sky = torch.cat([x[y == 2], x_test[y_test == 2]])
    greys = [img for img in sky if torch.allclose(img[0], img[2])]
    assert len(greys) == 1  # the grey "L" image came out as 3 equal channels
    assert torch.allclose(greys[0], torch.full((3, 8, 8), 128 / 255 * 2 - 1), atol=1e-6)


def test_default_image_size_is_32(tmp_path: Path) -> None:
    _three_classes(tmp_path, per_class=2)
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.info.image_size == (32, 32)
    x, _ = next(iter(ds.test.batches(4, shuffle=False)))
    assert x.shape[1:] == (3, 32, 32)


def test_split_depends_only_on_seed(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_pngs(tmp_path / name, [(i * 20, 0, 0) for i in range(10)])

    def test_reds(seed: int) -> list[float]:
        ds = load_folder(tmp_path, image_size=2, seed=seed)
        x, _ = next(iter(ds.test.batches(64, shuffle=False)))
        return sorted(round(v, 4) for v in x[:, 0, 0, 0].tolist())

    assert test_reds(0) == test_reds(0)
    assert test_reds(0) != test_reds(1)


@pytest.mark.parametrize("test_name", ["test", "val"])
def test_uses_train_and_test_subfolders(tmp_path: Path, test_name: str) -> None:
    _three_classes(tmp_path / "train", per_class=3)
    _three_classes(tmp_path / test_name, per_class=2)
    ds = load_dataset(f"folder:{tmp_path}", image_size=4)
    assert ds.info.class_names == ("apple", "leaf", "sky")
    assert (ds.info.train_size, ds.info.test_size) == (9, 6)
    assert _labels(ds.test) == [0, 0, 1, 1, 2, 2]


def test_train_and_test_classes_must_match(tmp_path: Path) -> None:
    _three_classes(tmp_path / "train", per_class=2)
    write_pngs(tmp_path / "test" / "apple", [RED])
    write_pngs(tmp_path / "test" / "pear", [GREEN])
    with pytest.raises(DataError, match=r"train classes .*differ from test classes.*pear"):
        load_dataset(f"folder:{tmp_path}")


def test_hidden_folders_are_not_classes(tmp_path: Path) -> None:
    _three_classes(tmp_path, per_class=2)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    assert load_dataset(f"folder:{tmp_path}").info.num_classes == 3


def test_shuffle_is_deterministic_with_a_seeded_generator(tmp_path: Path) -> None:
    for k in range(4):
        write_pngs(tmp_path / f"c{k}", [(k * 60, i * 40, 0) for i in range(5)])
    ds = load_folder(tmp_path, image_size=2)

    def order(seed: int) -> list[tuple[int, int]]:
        generator = torch.Generator().manual_seed(seed)
        batches = ds.train.batches(3, shuffle=True, generator=generator)
        pixels = [(x[:, :2, 0, 0] + 1) * 127.5 for x, _ in batches]  # (B, 2): red, green
        return [(round(r), round(g)) for r, g in torch.cat(pixels).tolist()]

    assert order(7) == order(7)
    assert order(7) != order(8)
    assert sorted(order(7)) == sorted(order(8))
    assert len(set(order(7))) == 16  # every train image once
    assert ds.train.num_batches(3) == 6


def test_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"folder:.*nope: .*nope does not exist"):
        load_dataset(f"folder:{tmp_path / 'nope'}")


def test_folder_without_class_subfolders(tmp_path: Path) -> None:
    write_pngs(tmp_path, [RED, GREEN])
    with pytest.raises(
        DataError, match=r"has no class subfolders; expected .*/<class>/<image>.png"
    ):
        load_dataset(f"folder:{tmp_path}")


def test_one_class_is_not_enough(tmp_path: Path) -> None:
    write_pngs(tmp_path / "only", [RED, GREEN])
    with pytest.raises(DataError, match=r"has 1 class subfolder \('only'\).* at least 2"):
        load_dataset(f"folder:{tmp_path}")


def test_class_folders_without_images(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"has no images under .*\.png"):
        load_dataset(f"folder:{tmp_path}")


def test_one_empty_class_is_named(tmp_path: Path) -> None:
    write_pngs(tmp_path / "a", [RED, RED])
    (tmp_path / "b").mkdir()
    with pytest.raises(DataError, match=r"has no images in b under"):
        load_dataset(f"folder:{tmp_path}")


def test_single_image_classes_cannot_be_split(tmp_path: Path) -> None:
    write_pngs(tmp_path / "a", [RED])
    write_pngs(tmp_path / "b", [GREEN])
    with pytest.raises(DataError, match="too few images to hold out a test split"):
        load_dataset(f"folder:{tmp_path}")


def test_non_positive_image_size_is_refused(tmp_path: Path) -> None:
    _three_classes(tmp_path, per_class=2)
    with pytest.raises(DataError, match="image size 0"):
        load_dataset(f"folder:{tmp_path}", image_size=0)


def _noise_bytes(fmt: str) -> bytes:
    """A 64x64 RGB noise image encoded as ``fmt``: noise makes the pixel data most of the file."""
    pixels = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _cut_in_half(path: Path, fmt: str) -> None:
    data = _noise_bytes(fmt)
    path.write_bytes(data[: len(data) // 2])
    with Image.open(path) as image:  # the premise: the header reads, only the pixels are cut
        assert image.size == (64, 64)


def _truncated_png(path: Path) -> None:
    _cut_in_half(path, "PNG")


def _text_as_png(path: Path) -> None:
    path.write_text("not a PNG, only named like one\n")


def _empty_file(path: Path) -> None:
    path.write_bytes(b"")


def _truncated_jpeg(path: Path) -> None:
    _cut_in_half(path, "JPEG")


def _png_without_end_chunk(path: Path) -> None:
    data = _noise_bytes("PNG")
    assert data[-8:-4] == b"IEND"
    path.write_bytes(data[:-12])  # verify() objects, but every pixel is there


def _jpeg_with_trailer(path: Path) -> None:
    path.write_bytes(_noise_bytes("JPEG") + b"camera trailer after the end marker")


BAD_FILES: dict[str, tuple[str, Callable[[Path], None]]] = {
    # kind: (file name, writer)
    "truncated-png": ("bad.png", _truncated_png),
    "text-as-png": ("bad.png", _text_as_png),
    "empty": ("bad.png", _empty_file),
    "truncated-jpeg": ("bad.jpg", _truncated_jpeg),
}
ODD_BUT_READABLE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "png-without-iend": ("odd.png", _png_without_end_chunk),
    "jpeg-with-trailer": ("odd.jpg", _jpeg_with_trailer),
    "good-png": ("odd.png", lambda path: path.write_bytes(_noise_bytes("PNG"))),
    "good-jpeg": ("odd.jpg", lambda path: path.write_bytes(_noise_bytes("JPEG"))),
}


def _with_file(root: Path, kind: str) -> str:
    """Three classes of 5 good images, plus one file of ``kind`` in ``leaf``; return its name."""
    _three_classes(root)
    name, write = {**BAD_FILES, **ODD_BUT_READABLE}[kind]
    write(root / "leaf" / name)
    return f"leaf/{name}"


def _decode_error(path: Path) -> str | None:
    """The reference: decode ``path`` as training does; return Pillow's error, or None."""
    try:
        with Image.open(path) as image:
            image.convert("RGB")
    except Exception as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("kind", [*BAD_FILES, *ODD_BUT_READABLE])
def test_check_refuses_exactly_the_files_training_cannot_decode(tmp_path: Path, kind: str) -> None:
    name = _with_file(tmp_path, kind)
    decodes = _decode_error(tmp_path / name) is None
    assert decodes == (kind in ODD_BUT_READABLE)  # the premise: these kinds do (not) decode
    if decodes:
        ds = load_folder(tmp_path, image_size=4)
        assert ds.info.train_size + ds.info.test_size == 16 and ds.info.skipped_images == 0
        assert len(_labels(ds.train) + _labels(ds.test)) == 16  # every image decodes
    else:
        with pytest.raises(DataError, match="cannot read image"):
            load_folder(tmp_path, image_size=4)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("truncated-png", None),  # None: Pillow's own words when decoding it
        ("text-as-png", "cannot identify image file"),
        ("empty", "empty file"),
        ("truncated-jpeg", None),
    ],
)
def test_unreadable_image_is_refused_by_name(tmp_path: Path, kind: str, reason: str | None) -> None:
    name = _with_file(tmp_path, kind)
    with pytest.raises(DataError) as exc:
        load_folder(tmp_path)
    expected = reason or _decode_error(tmp_path / name)
    assert str(exc.value) == (
        f"folder:{tmp_path}: cannot read image '{name}' ({expected}); "
        "remove or replace it, or pass --skip-bad-images"
    )


def test_all_bad_files_are_counted_and_the_first_is_named(tmp_path: Path) -> None:
    _three_classes(tmp_path / "train", per_class=3)
    _three_classes(tmp_path / "test", per_class=2)
    _text_as_png(tmp_path / "train" / "sky" / "z.png")
    _empty_file(tmp_path / "train" / "apple" / "z.png")
    _truncated_png(tmp_path / "test" / "leaf" / "z.png")
    with pytest.raises(DataError) as exc:
        load_dataset(f"folder:{tmp_path}")
    assert str(exc.value) == (
        f"folder:{tmp_path}: cannot read image 'train/apple/z.png' (empty file) and 2 more; "
        "remove or replace them, or pass --skip-bad-images"
    )


def test_skip_bad_images_leaves_them_out_with_one_warning_each(tmp_path: Path) -> None:
    _three_classes(tmp_path, per_class=5)
    _truncated_png(tmp_path / "apple" / "bad.png")
    _text_as_png(tmp_path / "leaf" / "bad.png")
    _empty_file(tmp_path / "sky" / "bad.png")
    _truncated_jpeg(tmp_path / "sky" / "bad.jpg")
    with pytest.warns(UserWarning) as caught:
        ds = load_folder(tmp_path, image_size=4, skip_bad_images=True)
    reasons = {
        "apple/bad.png": _decode_error(tmp_path / "apple" / "bad.png"),
        "leaf/bad.png": "cannot identify image file",
        "sky/bad.jpg": _decode_error(tmp_path / "sky" / "bad.jpg"),
        "sky/bad.png": "empty file",
    }  # in ImageFolder's order: by class, then by file name
    assert [str(w.message) for w in caught] == [
        f"folder:{tmp_path}: skipping unreadable image '{name}' ({reason})"
        for name, reason in reasons.items()
    ]
    assert ds.info.skipped_images == 4
    assert (ds.info.train_size, ds.info.test_size) == (12, 3)  # the 15 good images
    # every kept image decodes, with its own label: the split is over the good files only
    assert sorted(_labels(ds.train) + _labels(ds.test)) == [0] * 5 + [1] * 5 + [2] * 5


def test_clean_folder_skips_nothing_and_warns_nothing(tmp_path: Path) -> None:
    _three_classes(tmp_path, per_class=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_folder(tmp_path, skip_bad_images=True)
    assert ds.info.skipped_images == 0 and ds.info.train_size + ds.info.test_size == 6


def test_class_left_empty_by_skipping_is_named(tmp_path: Path) -> None:
    write_pngs(tmp_path / "apple", [RED, RED])
    (tmp_path / "leaf").mkdir()
    _text_as_png(tmp_path / "leaf" / "a.png")
    _empty_file(tmp_path / "leaf" / "b.png")
    with pytest.warns(UserWarning), pytest.raises(DataError) as exc:
        load_folder(tmp_path, skip_bad_images=True)
    assert str(exc.value) == (
        f"folder:{tmp_path} has no images in leaf under {tmp_path}. "
        "2 unreadable images were skipped; replace them with readable ones."
    )

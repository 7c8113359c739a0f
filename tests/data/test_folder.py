from __future__ import annotations

from pathlib import Path

import pytest
import torch

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

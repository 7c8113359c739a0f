from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets

from gradsight.data import TensorSplit, load_dataset
from gradsight.data.base import normalize_uint8
from gradsight.data.idx import write_idx
from gradsight.errors import DataError

from .fakes import MNIST_STEMS, dead_url, md5_of, mnist_arrays, serve_folder, write_mnist

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_reads_files_directly_in_data_dir(tmp_path: Path, gz: bool) -> None:
    write_mnist(tmp_path, gz=gz)
    arrays = mnist_arrays()
    ds = load_dataset("fashion-mnist", data_dir=tmp_path)
    train = arrays["train_images"]
    mean, std = float(train.mean() / 255), float((train / 255).std())
    assert ds.info.mean == pytest.approx((mean,))
    assert ds.info.std == pytest.approx((std,))
    assert (ds.info.train_size, ds.info.test_size, ds.info.num_classes) == (20, 10, 10)
    assert ds.info.class_names[0] == "T-shirt/top"
    assert ds.info.source == str(tmp_path)
    assert isinstance(ds.train, TensorSplit) and isinstance(ds.test, TensorSplit)
    expected = normalize_uint8(torch.from_numpy(train)[:, None], (mean,), (std,))
    assert ds.train.images.shape == (20, 1, 28, 28)
    assert ds.train.images.dtype == torch.float32
    assert torch.allclose(ds.train.images, expected, atol=1e-5)
    assert ds.train.labels.dtype == torch.int64
    assert ds.train.labels.tolist() == arrays["train_labels"].tolist()
    assert ds.test.images.shape == (10, 1, 28, 28)
    assert ds.test.labels.tolist() == arrays["test_labels"].tolist()


@pytest.mark.parametrize(
    ("name", "folder"), [("fashion-mnist", "FashionMNIST"), ("mnist", "MNIST")]
)
def test_reads_torchvision_layout(tmp_path: Path, name: str, folder: str) -> None:
    write_mnist(tmp_path / folder / "raw")
    ds = load_dataset(name, data_dir=tmp_path)
    assert ds.info.name == name
    assert ds.info.source == str(tmp_path / folder / "raw")
    assert len(ds.train) == 20
    assert len(ds.test) == 10


def test_mnist_does_not_read_fashion_mnist_folder(tmp_path: Path) -> None:
    write_mnist(tmp_path / "FashionMNIST" / "raw")
    with pytest.raises(DataError, match=r"MNIST files not found"):
        load_dataset("mnist", data_dir=tmp_path)


def test_mnist_class_names_are_digits(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    info = load_dataset("mnist", data_dir=tmp_path).info
    assert info.class_names == tuple("0123456789")
    assert info.licence is not None and "LeCun" in info.licence


def test_prefers_uncompressed_file_when_both_exist(tmp_path: Path) -> None:
    write_mnist(tmp_path, gz=True)
    write_mnist(tmp_path, gz=False)
    # Make the .gz labels different: if they were read, labels would all be 9.
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(20, 9, dtype=np.uint8))
    ds = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert isinstance(ds.train, TensorSplit)
    assert ds.train.labels.tolist() == mnist_arrays()["train_labels"].tolist()


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_reads_debian_package_folder() -> None:
    ds = load_dataset("fashion-mnist", data_dir=DEBIAN_DIR)
    assert (ds.info.train_size, ds.info.test_size) == (60_000, 10_000)
    assert ds.info.mean[0] == pytest.approx(0.2860, abs=1e-4)  # the published statistics
    assert ds.info.std[0] == pytest.approx(0.3530, abs=1e-4)
    assert isinstance(ds.train, TensorSplit) and isinstance(ds.test, TensorSplit)
    assert ds.train.images.shape == (60_000, 1, 28, 28)
    assert torch.bincount(ds.train.labels).tolist() == [6000] * 10
    assert torch.bincount(ds.test.labels).tolist() == [1000] * 10
    assert abs(float(ds.train.images.mean())) < 1e-3
    assert float(ds.train.images.std()) == pytest.approx(1.0, abs=1e-3)


def test_missing_data_dir_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    with pytest.raises(DataError, match=r"data dir .*no-such-dir does not exist.*--download"):
        load_dataset("fashion-mnist", data_dir=missing)


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match=r"is a file, not a folder"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "f")


def test_empty_data_dir_lists_missing_files_and_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    for stem in MNIST_STEMS.values():
        assert f"{stem}[.gz]" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir /usr/share/datasets/fashion-mnist" in message
    assert "--download" in message


def test_partial_files_list_only_the_missing_one(tmp_path: Path) -> None:
    paths = write_mnist(tmp_path)
    paths["test_labels"].unlink()
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert "missing t10k-labels-idx1-ubyte[.gz]." in str(info.value)
    assert "train-images" not in str(info.value).split("missing")[1]


def test_label_out_of_range_is_refused(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(10, 12, dtype=np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz has label 12; .* 0 to 9"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    with pytest.raises(DataError, match=r"has 20 images but .* has 19 labels"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def test_swapped_files_are_reported(tmp_path: Path) -> None:
    paths = write_mnist(tmp_path)
    images = paths["train_images"].read_bytes()
    paths["train_images"].write_bytes(paths["train_labels"].read_bytes())
    paths["train_labels"].write_bytes(images)
    with pytest.raises(DataError, match=r"shape \(20,\); expected uint8 images .* swapped"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


# --- downloading, through torchvision's real code, from a loopback HTTP mirror -----------


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder holding the four IDX .gz files, and the URL it is served at."""
    folder = tmp_path / "mirror"
    write_mnist(folder)
    with serve_folder(folder) as url:
        yield folder, url


def _serve(monkeypatch: pytest.MonkeyPatch, cls: type, mirror: tuple[Path, str]) -> None:
    """Point torchvision's ``cls`` at the mirror: its URL and its files' md5s."""
    folder, url = mirror
    resources = [(f"{stem}.gz", md5_of(folder / f"{stem}.gz")) for stem in MNIST_STEMS.values()]
    monkeypatch.setattr(cls, "mirrors", [url])
    monkeypatch.setattr(cls, "resources", resources)


@pytest.mark.parametrize(
    ("name", "cls_name"), [("fashion-mnist", "FashionMNIST"), ("mnist", "MNIST")]
)
def test_downloads_into_cache_with_torchvision(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mirror: tuple[Path, str],
    name: str,
    cls_name: str,
) -> None:
    cls = getattr(torchvision.datasets, cls_name)
    _serve(monkeypatch, cls, mirror)
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRADSIGHT_DATA_DIR", str(cache))

    ds = load_dataset(name)  # no data_dir: the cache, downloading on

    arrays = mnist_arrays()
    raw = cache / cls_name / "raw"
    assert sorted(os.listdir(raw)) == sorted(
        [f"{stem}.gz" for stem in MNIST_STEMS.values()] + list(MNIST_STEMS.values())
    )
    assert ds.info.source == str(raw)
    assert isinstance(ds.train, TensorSplit) and isinstance(ds.test, TensorSplit)
    assert ds.train.labels.tolist() == arrays["train_labels"].tolist()
    assert ds.test.labels.tolist() == arrays["test_labels"].tolist()
    assert ds.info.mean == pytest.approx((arrays["train_images"].mean() / 255,))

    # A second load reads the cache: a dead mirror must not matter now.
    monkeypatch.setattr(cls, "mirrors", [(tmp_path / "gone").as_uri() + "/"])
    assert len(load_dataset(name).train) == 20


def test_explicit_download_creates_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: tuple[Path, str]
) -> None:
    _serve(monkeypatch, torchvision.datasets.FashionMNIST, mirror)
    target = tmp_path / "new" / "data"
    ds = load_dataset("fashion-mnist", data_dir=target, download=True)
    assert (target / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert len(ds.train) == 20


def test_data_dir_without_download_does_not_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: tuple[Path, str]
) -> None:
    _serve(monkeypatch, torchvision.datasets.FashionMNIST, mirror)
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="files not found"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "data")
    assert not (tmp_path / "data" / "FashionMNIST").exists()


def test_cache_with_download_off_reports_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADSIGHT_DATA_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"files not found in .*cache"):
        load_dataset("fashion-mnist", download=False)


def test_failed_download_explains_how_to_get_files_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADSIGHT_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "mirrors", [dead_url()])
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist")
    message = str(info.value)
    assert message.startswith(f"could not download Fashion-MNIST into {tmp_path / 'cache'}: ")
    assert "Error downloading train-images-idx3-ubyte.gz: <urlopen error" in message
    assert "Connection refused" in message
    assert message.endswith(
        "To get the files offline: on Debian, apt-get install dataset-fashion-mnist "
        "and pass --data-dir /usr/share/datasets/fashion-mnist."
    )
    assert "\n" not in message


def test_checksum_mismatch_is_a_failed_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mirror: tuple[Path, str]
) -> None:
    cls = torchvision.datasets.FashionMNIST
    _serve(monkeypatch, cls, mirror)
    monkeypatch.setattr(cls, "resources", [(n, "0" * 32) for n, _ in cls.resources])
    with pytest.raises(DataError, match=r"could not download Fashion-MNIST .*corrupted"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "data", download=True)

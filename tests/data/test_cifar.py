from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10

from gradsight.data import TensorSplit, load_dataset
from gradsight.data.cifar import read_cifar_batch
from gradsight.errors import DataError

from .fakes import cifar_batches, md5_of, serve_folder, write_cifar, write_cifar_tarball

TRAIN_NAMES = [f"data_batch_{k}" for k in range(1, 6)]


def _expected_train() -> tuple[np.ndarray, list[int]]:
    batches = cifar_batches()
    data = np.concatenate([batches[name][0] for name in TRAIN_NAMES])
    labels = [label for name in TRAIN_NAMES for label in batches[name][1]]
    return data, labels


@pytest.mark.parametrize("inner", [True, False], ids=["batches-folder", "flat"])
def test_reads_batches_from_folder_or_its_cifar_subfolder(tmp_path: Path, inner: bool) -> None:
    write_cifar(tmp_path / "cifar-10-batches-py" if inner else tmp_path)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    data, labels = _expected_train()
    assert (ds.info.train_size, ds.info.test_size, ds.info.channels) == (15, 4, 3)
    assert ds.info.image_size == (32, 32)
    assert ds.info.class_names[:3] == ("airplane", "automobile", "bird")
    assert ds.info.class_names[-1] == "truck"
    # Channel c of every image is columns [1024 c, 1024 (c + 1)) of the CIFAR rows.
    expected_mean = tuple(float(data[:, c * 1024 : (c + 1) * 1024].mean() / 255) for c in range(3))
    assert ds.info.mean == pytest.approx(expected_mean)
    assert isinstance(ds.train, TensorSplit) and isinstance(ds.test, TensorSplit)
    assert ds.train.images.shape == (15, 3, 32, 32)
    assert ds.train.images.dtype == torch.float32
    assert ds.train.labels.tolist() == labels
    assert ds.test.labels.tolist() == cifar_batches()["test_batch"][1]
    green = torch.from_numpy(data[4, 1024:2048].reshape(32, 32)).float() / 255
    expected = (green - ds.info.mean[1]) / ds.info.std[1]
    assert torch.allclose(ds.train.images[4, 1], expected, atol=1e-5)


def test_pickles_of_any_protocol_are_read(tmp_path: Path) -> None:
    write_cifar(tmp_path, protocol=pickle.HIGHEST_PROTOCOL)
    images, labels = read_cifar_batch(tmp_path / "test_batch")
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8
    assert labels.tolist() == cifar_batches()["test_batch"][1]


def test_str_keys_are_read_too(tmp_path: Path) -> None:
    data = np.zeros((2, 3072), dtype=np.uint8)
    (tmp_path / "b").write_bytes(pickle.dumps({"data": data, "labels": [3, 4]}))
    assert read_cifar_batch(tmp_path / "b")[1].tolist() == [3, 4]


class _Payload:
    """Unpickling this would create ``path``: it must never run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    sentinel = tmp_path / "pwned"
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps({b"data": _Payload(sentinel)}))
    with pytest.raises(DataError, match=r"data_batch_2 is not a readable .*is not allowed"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not sentinel.exists()


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data dir .*nowhere does not exist"):
        load_dataset("cifar10", data_dir=tmp_path / "nowhere")


def test_missing_files_are_listed_with_the_fix(tmp_path: Path) -> None:
    write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", data_dir=tmp_path)
    message = str(info.value)
    assert "missing data_batch_3. " in message
    assert "cifar-10-python.tar.gz" in message
    assert "--download" in message


def test_bad_batch_shape_is_refused(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    bad = {b"data": np.zeros((3, 100), dtype=np.uint8), b"labels": [0, 1, 2]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError, match=r"test_batch is not a CIFAR-10 batch: .*\(3, 100\)"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_labels_must_match_images(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    bad = {b"data": np.zeros((3, 3072), dtype=np.uint8), b"labels": [0, 11, 2]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError, match=r"test_batch has 3 labels in \[0, 11\]"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_image_size_other_than_32_is_refused(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    assert load_dataset("cifar10", data_dir=tmp_path, image_size=32).info.image_size == (32, 32)
    with pytest.raises(DataError, match=r"image size 28 does not apply to 'cifar10'"):
        load_dataset("cifar10", data_dir=tmp_path, image_size=28)


def test_downloads_and_extracts_with_torchvision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = write_cifar_tarball(tmp_path)
    monkeypatch.setenv("GRADSIGHT_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5_of(archive))
    with serve_folder(archive.parent) as url:
        monkeypatch.setattr(CIFAR10, "url", url + archive.name)
        ds = load_dataset("cifar10")
    assert (tmp_path / "cache" / "cifar-10-python.tar.gz").is_file()
    assert ds.info.source == str(tmp_path / "cache" / "cifar-10-batches-py")
    assert ds.info.train_size == 15
    assert isinstance(ds.train, TensorSplit)
    assert ds.train.labels.tolist() == _expected_train()[1]


def test_archive_already_in_data_dir_is_extracted_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = write_cifar_tarball(tmp_path)
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5_of(archive))
    monkeypatch.setattr(CIFAR10, "url", (tmp_path / "no-such-host").as_uri())
    ds = load_dataset("cifar10", data_dir=archive.parent, download=True)
    assert ds.info.test_size == 4


def test_corrupted_download_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = write_cifar_tarball(tmp_path)
    monkeypatch.setattr(CIFAR10, "tgz_md5", "0" * 32)
    with serve_folder(archive.parent) as url:
        monkeypatch.setattr(CIFAR10, "url", url + archive.name)
        with pytest.raises(DataError) as info:
            load_dataset("cifar10", data_dir=tmp_path / "data", download=True)
    message = str(info.value)
    assert message.startswith(f"could not download CIFAR-10 into {tmp_path / 'data'}: ")
    assert "File not found or corrupted" in message
    assert "put cifar-10-python.tar.gz" in message

from __future__ import annotations

import hashlib
import importlib.util
import lzma
from importlib import resources
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from gradsight.data import DatasetInfo, TensorSplit, load_dataset
from gradsight.data.bundled import read_mini_npz
from gradsight.errors import DataError

ASSETS = resources.files("gradsight.data").joinpath("assets")
SCRIPT = Path(__file__).parents[2] / "scripts" / "build_fashion_mnist_mini.py"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


Mini = tuple[TensorSplit, TensorSplit, DatasetInfo]


@pytest.fixture(scope="module")
def mini() -> Mini:
    ds = load_dataset("fashion-mnist-mini")
    assert isinstance(ds.train, TensorSplit) and isinstance(ds.test, TensorSplit)
    return ds.train, ds.test, ds.info


def test_shapes_and_exact_class_balance(mini: Mini) -> None:
    train, test, _ = mini
    assert train.images.shape == (12_800, 1, 28, 28) and train.images.dtype == torch.float32
    assert test.images.shape == (2_000, 1, 28, 28)
    assert train.labels.dtype == torch.int64
    assert torch.bincount(train.labels).tolist() == [1280] * 10
    assert torch.bincount(test.labels).tolist() == [200] * 10


def test_normalised_with_its_own_train_statistics(
    mini: Mini,
) -> None:
    train, test, info = mini
    assert abs(float(train.images.mean())) < 1e-4
    assert float(train.images.std()) == pytest.approx(1.0, abs=1e-4)
    assert abs(float(test.images.mean())) < 0.05  # same distribution, other images
    assert info.mean[0] == pytest.approx(0.2860, abs=5e-3)
    assert info.std[0] == pytest.approx(0.3530, abs=5e-3)


def test_info_names_classes_and_licence(mini: Mini) -> None:
    info = mini[2]
    assert info.name == "fashion-mnist-mini"
    assert info.class_names == (
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
    assert (info.channels, info.image_size, info.num_classes) == (1, (28, 28), 10)
    assert (info.train_size, info.test_size) == (12_800, 2_000)
    assert info.licence is not None
    assert "MIT" in info.licence and "Zalando" in info.licence and "1708.07747" in info.licence


def test_shipped_file_matches_its_sha256_and_size_limit() -> None:
    data = ASSETS.joinpath("fashion-mnist-mini.npz.xz").read_bytes()
    digest, name = ASSETS.joinpath("fashion-mnist-mini.sha256").read_text().split()
    assert name == "fashion-mnist-mini.npz.xz"
    assert hashlib.sha256(data).hexdigest() == digest
    assert len(data) <= 6_000_000


def test_licence_and_citation_ship_beside_it() -> None:
    licence = ASSETS.joinpath("FASHION-MNIST-LICENSE.txt").read_text()
    assert "Copyright (c) 2017 Zalando SE" in licence
    assert "Permission is hereby granted, free of charge" in licence
    citation = ASSETS.joinpath("FASHION-MNIST-CITATION.txt").read_text()
    assert "arXiv:1708.07747" in citation and "@online{" in citation
    assert "Xiao" in citation and "Rasul" in citation and "Vollgraf" in citation


def test_corrupted_bytes_are_refused() -> None:
    data = bytearray(ASSETS.joinpath("fashion-mnist-mini.npz.xz").read_bytes())
    digest = hashlib.sha256(data).hexdigest()
    data[1000] ^= 0xFF
    with pytest.raises(
        DataError, match=rf"x.npz is corrupted: its sha256 is [0-9a-f]{{64}}, expected {digest}"
    ):
        read_mini_npz(bytes(data), digest, source="x.npz")


def test_archive_without_the_arrays_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", train_images=np.zeros((2, 28, 28), dtype=np.uint8))
    data = lzma.compress((tmp_path / "a.npz").read_bytes())
    with pytest.raises(DataError, match=r"a.npz is not a fashion-mnist-mini archive"):
        read_mini_npz(data, hashlib.sha256(data).hexdigest(), source="a.npz")


def test_bytes_that_are_not_xz_are_refused() -> None:
    data = b"not xz at all"
    with pytest.raises(DataError, match=r"b.npz.xz is not a fashion-mnist-mini archive"):
        read_mini_npz(data, hashlib.sha256(data).hexdigest(), source="b.npz.xz")


def test_bad_array_shapes_are_refused(tmp_path: Path) -> None:
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    np.savez(
        tmp_path / "a.npz",
        train_images=images,
        train_labels=np.zeros(3, dtype=np.uint8),
        test_images=images,
        test_labels=np.zeros(2, dtype=np.uint8),
    )
    data = lzma.compress((tmp_path / "a.npz").read_bytes())
    with pytest.raises(DataError, match=r"train_labels is \(3,\); expected uint8 \(N, 28, 28\)"):
        read_mini_npz(data, hashlib.sha256(data).hexdigest(), source="a.npz")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_fashion_mnist_mini", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_script_picks_a_balanced_sorted_subset() -> None:
    script = _script()
    labels = np.arange(300) % 10
    keep = script.balanced_subset(labels, 7, np.random.default_rng(0))
    assert len(keep) == 70 and np.all(np.diff(keep) > 0)
    assert np.bincount(labels[keep]).tolist() == [7] * 10
    again = script.balanced_subset(labels, 7, np.random.default_rng(0))
    np.testing.assert_array_equal(keep, again)


def test_build_script_npz_is_reproducible_and_loadable(tmp_path: Path) -> None:
    script = _script()
    arrays = {"a": np.arange(6, dtype=np.uint8).reshape(2, 3), "b": np.ones(4, dtype=np.int64)}
    first, second = script.npz_bytes(arrays), script.npz_bytes(arrays)
    assert first == second
    (tmp_path / "x.npz").write_bytes(lzma.decompress(first))
    with np.load(tmp_path / "x.npz") as npz:
        np.testing.assert_array_equal(npz["a"], arrays["a"])
        np.testing.assert_array_equal(npz["b"], arrays["b"])


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_build_script_rebuilds_the_shipped_file_exactly(tmp_path: Path) -> None:
    out = tmp_path / "fashion-mnist-mini.npz.xz"
    assert _script().main(["--src", str(DEBIAN_DIR), "--out", str(out)]) == 0
    assert out.read_bytes() == ASSETS.joinpath("fashion-mnist-mini.npz.xz").read_bytes()
    shipped = ASSETS.joinpath("fashion-mnist-mini.sha256").read_text()
    assert (tmp_path / "fashion-mnist-mini.sha256").read_text() == shipped

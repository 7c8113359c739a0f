from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import gradsight.data as data
from gradsight.data import DATASET_NAMES, DEFAULT_DATASET, default_cache_dir, load_dataset
from gradsight.errors import DataError

from .fakes import write_mnist, write_pngs

VALID = "fashion-mnist-mini, fashion-mnist, mnist, cifar10, synthetic, folder:PATH"


def test_names_and_default() -> None:
    assert DATASET_NAMES == (
        "fashion-mnist-mini",
        "fashion-mnist",
        "mnist",
        "cifar10",
        "synthetic",
        "folder:PATH",
    )
    assert DEFAULT_DATASET == "fashion-mnist-mini"
    assert load_dataset(DEFAULT_DATASET).info.name == "fashion-mnist-mini"


def test_public_api() -> None:
    for name in (
        "load_dataset",
        "DATASET_NAMES",
        "DatasetInfo",
        "LoadedDataset",
        "TensorSplit",
        "Split",
        "StreamSplit",
        "default_cache_dir",
    ):
        assert name in data.__all__
        assert hasattr(data, name)


def test_unknown_name_lists_valid_datasets() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("imagenet")
    assert str(info.value) == f"unknown dataset 'imagenet'. Valid datasets: {VALID}"


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("fashion_mnist")
    assert str(info.value) == (
        f"unknown dataset 'fashion_mnist'. Valid datasets: {VALID}. Did you mean 'fashion-mnist'?"
    )


def test_folder_without_path_is_refused() -> None:
    with pytest.raises(DataError, match=r"dataset 'folder:' names no folder; write folder:PATH"):
        load_dataset("folder:")


@pytest.mark.parametrize(("name", "native"), [("fashion-mnist-mini", 28), ("mnist", 28)])
def test_image_size_only_applies_to_folder_and_synthetic(name: str, native: int) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(name, image_size=64)
    message = str(info.value)
    assert f"image size 64 does not apply to '{name}'" in message
    assert f"{native}x{native}" in message
    assert "folder:PATH and synthetic" in message


def test_native_image_size_is_accepted(tmp_path: Path) -> None:
    write_mnist(tmp_path)
    assert load_dataset("mnist", data_dir=tmp_path, image_size=28).info.image_size == (28, 28)


def test_seed_and_image_size_reach_folder_and_synthetic(tmp_path: Path) -> None:
    write_pngs(tmp_path / "a", [(255, 0, 0)] * 3)
    write_pngs(tmp_path / "b", [(0, 255, 0)] * 3)
    folder = load_dataset(f"folder:{tmp_path}", image_size=5, seed=1)
    assert folder.info.image_size == (5, 5)
    assert folder.info.source == str(tmp_path.resolve())
    synthetic = load_dataset("synthetic", image_size=6, seed=9)
    assert synthetic.info.image_size == (6, 6)
    assert synthetic.info.source == "generated (seed 9)"


def test_default_cache_dir_follows_env_then_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADSIGHT_DATA_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("GRADSIGHT_DATA_DIR", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "gradsight" / "data"


def test_importing_the_package_does_not_import_torchvision() -> None:
    code = "import sys, gradsight.data; print('torchvision' in sys.modules)"
    src = Path(__file__).parents[2] / "src"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == "False"

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from gradsight.data.base import LoadedDataset
from gradsight.errors import ModelError
from gradsight.models import SimpleCNN, build_model, check_model_fits


def test_builtin_models_sized_from_data(tiny_data: LoadedDataset) -> None:
    model = build_model("simple", tiny_data.info)
    assert isinstance(model, SimpleCNN)
    assert model.conv1.in_channels == 1 and model.fc.out_features == 3
    check_model_fits(model, tiny_data.info, torch.device("cpu"))
    deep = build_model("deep", tiny_data.info)
    check_model_fits(deep, tiny_data.info, torch.device("cpu"))


def test_unknown_model_lists_valid_names(tiny_data: LoadedDataset) -> None:
    with pytest.raises(ModelError, match=r"unknown model 'resnet'.*simple, deep"):
        build_model("resnet", tiny_data.info)


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "mymodel.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_user_model_file_with_size_kwargs(tmp_path: Path, tiny_data: LoadedDataset) -> None:
    path = _write(
        tmp_path,
        """
        from torch import nn
        class Net(nn.Module):
            def __init__(self, in_channels, num_classes, image_size=32):
                super().__init__()
                self.seen = (in_channels, num_classes, image_size)
                self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)
            def forward(self, x):
                return self.fc(x.flatten(1))
        """,
    )
    model = build_model(f"{path}:Net", tiny_data.info)
    assert model.seen == (1, 3, 8)  # type: ignore[comparison-overlap]
    check_model_fits(model, tiny_data.info, torch.device("cpu"))


def test_user_model_without_arguments(tmp_path: Path, tiny_data: LoadedDataset) -> None:
    path = _write(
        tmp_path,
        """
        from torch import nn
        class Fixed(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(64, 3)
            def forward(self, x):
                return self.fc(x.flatten(1))
        """,
    )
    model = build_model(f"{path}:Fixed", tiny_data.info)
    check_model_fits(model, tiny_data.info, torch.device("cpu"))


def test_user_model_from_package_module(tiny_data: LoadedDataset) -> None:
    model = build_model("gradsight.models.simple_cnn:SimpleCNN", tiny_data.info)
    assert isinstance(model, SimpleCNN) and model.fc.out_features == 3


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing/file.py:Net", r"model file 'missing/file.py' does not exist"),
        ("no_such_pkg_xyz.mod:Net", r"cannot import module 'no_such_pkg_xyz.mod'"),
        ("gradsight.models.simple_cnn:Nope", r"no class 'Nope'; nn.Module classes there: .*CNN"),
        ("gradsight.config:TrainConfig", r"is not a torch.nn.Module subclass"),
    ],
)  # fmt: skip
def test_user_model_errors(spec: str, message: str, tiny_data: LoadedDataset) -> None:
    with pytest.raises(ModelError, match=message):
        build_model(spec, tiny_data.info)


def test_user_model_needing_other_arguments(tmp_path: Path, tiny_data: LoadedDataset) -> None:
    path = _write(
        tmp_path,
        """
        from torch import nn
        class Needy(nn.Module):
            def __init__(self, hidden):
                super().__init__()
        """,
    )
    with pytest.raises(ModelError, match=r"Needy\(\) requires hidden"):
        build_model(f"{path}:Needy", tiny_data.info)


def test_wrong_input_shape_names_expected_shape(tiny_data: LoadedDataset) -> None:
    model = SimpleCNN(in_channels=3, num_classes=3, image_size=8)  # data has 1 channel
    with pytest.raises(ModelError, match=r"input of shape \[2, 1, 8, 8\]"):
        check_model_fits(model, tiny_data.info, torch.device("cpu"))


def test_wrong_number_of_classes(tiny_data: LoadedDataset) -> None:
    model = SimpleCNN(in_channels=1, num_classes=10, image_size=8)  # data has 3 classes
    with pytest.raises(ModelError, match=r"returned \[2, 10\].*expected logits of shape \[2, 3\]"):
        check_model_fits(model, tiny_data.info, torch.device("cpu"))


def test_fit_check_restores_training_mode(tiny_data: LoadedDataset) -> None:
    model = build_model("simple", tiny_data.info)
    model.train()
    check_model_fits(model, tiny_data.info, torch.device("cpu"))
    assert model.training

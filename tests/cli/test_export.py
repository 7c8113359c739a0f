"""``gradsight export`` and ``gradsight train --deterministic``, run in-process."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest
import torch

from gradsight.cli import ExitCode, main

FAST = ["--data", "synthetic", "--epochs", "1", "--batch-size", "64", "--device", "cpu"]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("export") / "run"
    try:
        code, _, err = run_cli("train", *FAST, "--quiet", "--deterministic", "--out", str(path))
    finally:
        torch.use_deterministic_algorithms(False)  # leave the other tests as they were
    assert code == ExitCode.OK, err
    return path


def test_deterministic_is_recorded_in_env_and_config(run: Path) -> None:
    env = json.loads((run / "env.json").read_text())
    assert env["deterministic"] is True and env["cudnn_deterministic"] is True
    assert env["cudnn_benchmark"] is False and env["cublas_workspace_config"] == ":4096:8"
    assert json.loads((run / "config.json").read_text())["deterministic"] is True
    torch.backends.cudnn.deterministic = False


def test_export_safetensors_holds_the_final_weights(run: Path, tmp_path: Path) -> None:
    safetensors_torch = pytest.importorskip("safetensors.torch")
    out_file = tmp_path / "model.safetensors"
    code, out, err = run_cli("export", str(run), "--format", "safetensors", "--out", str(out_file))
    assert code == ExitCode.OK, err
    assert "wrote 4 tensors" in out
    ours = safetensors_torch.load_file(str(out_file))
    expected = torch.load(run / "model.pt", weights_only=True)
    assert sorted(ours) == sorted(expected)
    assert all(torch.equal(ours[k], expected[k]) for k in expected)


def test_export_without_safetensors_says_how_to_install(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # import now fails
    code, _, err = run_cli("export", str(run), "--out", str(tmp_path / "m.safetensors"))
    assert code == ExitCode.USAGE
    assert err.strip().count("\n") == 0 and "pip install safetensors" in err


def test_export_onnx_matches_pytorch(run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out_file = tmp_path / "model.onnx"
    code, out, err = run_cli("export", str(run), "--format", "onnx", "--out", str(out_file))
    assert code == ExitCode.OK, err
    diff = float(re.search(r"largest difference (\S+)", out).group(1))  # type: ignore[union-attr]
    assert out_file.stat().st_size > 10_000 and diff < 1e-4


@pytest.mark.parametrize("fmt", ["safetensors", "onnx"])
def test_export_of_a_folder_that_is_no_run_is_one_line(tmp_path: Path, fmt: str) -> None:
    pytest.importorskip("safetensors" if fmt == "safetensors" else "onnx")
    code, _, err = run_cli("export", str(tmp_path), "--format", fmt, "--out", "x.out")
    assert code == ExitCode.USAGE
    assert f"{tmp_path} has no config.json" in err and err.strip().count("\n") == 0

"""``gradsight export`` and ``gradsight train --deterministic``, run in-process."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import torch

from gradsight.cli import ExitCode, main
from gradsight.config import TrainConfig
from gradsight.train import prepare

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


def test_export_onnx_runs_other_batch_sizes_and_matches_pytorch(run: Path, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    out_file = tmp_path / "model.onnx"
    code, out, err = run_cli("export", str(run), "--format", "onnx", "--out", str(out_file))
    assert code == ExitCode.OK, err
    assert "ONNX vs PyTorch on 8 test images" in out  # the exporter traces with a batch of 8
    # The batch axis is named, not fixed at the traced size.
    (images_input,) = onnx.load(str(out_file)).graph.input
    assert images_input.name == "images"
    assert images_input.type.tensor_type.shape.dim[0].dim_param == "batch"

    # The reference: the run's model rebuilt from its config and model.pt, without export.py.
    config = TrainConfig.load(run / "config.json")
    prepared = prepare(
        TrainConfig.from_dict({**config.to_dict(), "device": "cpu", "deterministic": False})
    )
    prepared.model.load_state_dict(torch.load(run / "model.pt", weights_only=True))
    prepared.model.eval()
    test_images, _ = next(prepared.data.test.batches(14, shuffle=False))  # (14, C, H, W)
    session = ort.InferenceSession(str(out_file), providers=["CPUExecutionProvider"])
    # Images the exporter did not trace with, at batch sizes other than its 8.
    for batch in (test_images[8:13], test_images[13:14]):  # (5, C, H, W), (1, C, H, W)
        (logits,) = session.run(["logits"], {"images": batch.numpy()})
        with torch.no_grad():
            expected = prepared.model(batch)  # (B, num_classes)
        assert logits.shape == (batch.shape[0], expected.shape[1])
        torch.testing.assert_close(torch.from_numpy(logits), expected, rtol=1e-5, atol=1e-5)


def test_export_onnx_of_a_deterministic_run_leaves_torch_settings_alone(
    run: Path, tmp_path: Path
) -> None:
    pytest.importorskip("onnx")
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False
    try:
        code, _, err = run_cli("export", str(run), "--format", "onnx", "--out", str(tmp_path / "m"))
        assert code == ExitCode.OK, err
        assert json.loads((run / "config.json").read_text())["deterministic"] is True
        # Exporting only runs inference: the run's training switch must not leak into the caller.
        assert torch.are_deterministic_algorithms_enabled() is False
        assert torch.backends.cudnn.deterministic is False
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False


@pytest.mark.parametrize("fmt", ["safetensors", "onnx"])
def test_export_of_a_folder_that_is_no_run_is_one_line(tmp_path: Path, fmt: str) -> None:
    pytest.importorskip("safetensors" if fmt == "safetensors" else "onnx")
    code, _, err = run_cli("export", str(tmp_path), "--format", fmt, "--out", "x.out")
    assert code == ExitCode.USAGE
    assert f"{tmp_path} has no config.json" in err and err.strip().count("\n") == 0

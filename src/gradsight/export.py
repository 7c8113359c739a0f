"""Export a run's final weights: as safetensors, or as an ONNX graph checked against PyTorch."""

from __future__ import annotations

import contextlib
import importlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from gradsight.config import TrainConfig
from gradsight.errors import ConfigError
from gradsight.train import Prepared, prepare

__all__ = ["FORMATS", "OnnxCheck", "export_onnx", "export_safetensors", "load_run"]

#: The formats ``gradsight export`` writes.
FORMATS = ("safetensors", "onnx")


def _require(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"'{module}' is not installed; pip install {package} (or gradsight[export])"
        ) from None


def _check_run(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    for name in ("config.json", "model.pt"):
        if not (run_dir / name).is_file():
            raise ConfigError(f"{run_dir} has no {name}; pass a finished gradsight run folder")
    return run_dir


def load_run(run_dir: Path) -> Prepared:
    """Rebuild a finished run's model from its ``config.json`` and load its ``model.pt``.

    The model is rebuilt on CPU with ``deterministic`` off: it only runs inference, and
    ``prepare`` would otherwise switch torch's process-wide deterministic mode on.

    Raises:
        ConfigError: ``run_dir`` has no ``config.json`` or ``model.pt``.
    """
    run_dir = _check_run(run_dir)
    config = TrainConfig.load(run_dir / "config.json")
    overrides = {"device": "cpu", "deterministic": False}
    prepared = prepare(TrainConfig.from_dict({**config.to_dict(), **overrides}))
    weights = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)
    prepared.model.load_state_dict(weights)
    prepared.model.eval()
    return prepared


def export_safetensors(run_dir: Path, out: Path) -> int:
    """Write the run's weights to ``out`` as safetensors; return the number of tensors."""
    safetensors_torch = _require("safetensors.torch", "safetensors")
    weights = torch.load(_check_run(run_dir) / "model.pt", map_location="cpu", weights_only=True)
    safetensors_torch.save_file({k: v.contiguous() for k, v in weights.items()}, str(out))
    return len(weights)


@dataclass(frozen=True)
class OnnxCheck:
    """How the exported graph compares with PyTorch on one test batch."""

    batch: int
    max_abs_diff: float | None  # None when onnxruntime is not installed


def export_onnx(run_dir: Path, out: Path, batch_size: int = 8) -> OnnxCheck:
    """Export the run's model to ONNX at ``out`` and compare it with PyTorch on a test batch."""
    _require("onnx", "onnx onnxscript")
    prepared = load_run(run_dir)
    inputs, _ = next(prepared.data.test.batches(batch_size, shuffle=False))  # (B, C, H, W)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            prepared.model, (inputs,), str(out), input_names=["images"],
            output_names=["logits"], dynamic_axes={"images": {0: "batch"}}, dynamo=False,
        )  # fmt: skip
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError:
        return OnnxCheck(int(inputs.shape[0]), None)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (ours,) = session.run(None, {"images": inputs.numpy()})
    with torch.no_grad():
        expected = prepared.model(inputs)  # (B, num_classes)
    diff = float((torch.from_numpy(ours) - expected).abs().max())
    return OnnxCheck(int(inputs.shape[0]), diff)

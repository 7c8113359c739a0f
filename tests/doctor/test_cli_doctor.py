"""``gradsight doctor`` for real on this machine, in-process and as ``python -m gradsight``."""

from __future__ import annotations

import io
import json
import platform
import subprocess
import sys
from typing import Any

import pytest
import torch

from gradsight.cli import doctor as cli_doctor
from gradsight.cli import main
from gradsight.doctor import gather

ROWS = [
    "Python", "gradsight", "torch", "torchvision", "CUDA usable", "NVIDIA driver", "nvidia-smi",
    "GPUs", "/dev/nvidia*", "CUDA_VISIBLE_DEVICES", "MPS", "container", "Graphviz dot", "Chromium",
]  # fmt: skip
NO_CUDA = not torch.cuda.is_available()


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()


def check_report(code: int, data: dict[str, Any]) -> None:
    """The JSON names the facts of this process and its exit code follows the errors."""
    assert set(data) == {"facts", "diagnoses", "cuda_usable", "exit_code"}
    facts, diagnoses = data["facts"], data["diagnoses"]
    assert facts["host"]["python"] == platform.python_version()
    assert facts["torch"]["version"] == torch.__version__
    assert facts["torch"]["cuda"] == torch.version.cuda
    assert data["cuda_usable"] == facts["torch"]["cuda_usable"] == torch.cuda.is_available()
    assert all(set(d) == {"code", "severity", "message", "fix"} for d in diagnoses)
    assert code == data["exit_code"] == int(any(d["severity"] == "error" for d in diagnoses))


def test_json_in_process() -> None:
    code, out, err = run_cli("doctor", "--json")
    data = json.loads(out)
    check_report(code, data)
    assert err == ""
    cuda = next(d for d in data["diagnoses"] if d["code"] == "cuda")
    assert cuda["message"].startswith("CUDA not available" if NO_CUDA else "CUDA ")
    nvidia = data["facts"]["nvidia"]
    if NO_CUDA and not nvidia["gpus"] and not nvidia["pci_gpus"]:
        assert code == 0  # no GPU at all is a healthy CPU machine


def test_text_in_process() -> None:
    code, out, _ = run_cli("doctor")
    lines = out.splitlines()
    assert [line.split("  ")[0] for line in lines[: len(ROWS)]] == ROWS
    assert lines[2].startswith(f"torch                 {torch.__version__}: ")
    assert lines[-1].startswith("gradsight doctor: ")
    assert ("error:" in out) is (code == 1)


@pytest.mark.skipif(not NO_CUDA, reason="CUDA works here")
def test_require_cuda_fails_without_cuda() -> None:
    code, out, _ = run_cli("doctor", "--json", "--require-cuda")
    data = json.loads(out)
    check_report(code, data)
    required = [d for d in data["diagnoses"] if d["code"] == "cuda-required"]
    assert code == 1 and len(required) == 1 and required[0]["fix"]
    code, out, _ = run_cli("doctor", "--require-cuda")
    assert code == 1 and "error: CUDA is required (--require-cuda) but not usable here" in out


def test_python_m_gradsight_doctor() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gradsight", "doctor", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    data = json.loads(done.stdout)
    check_report(done.returncode, data)
    assert data["facts"]["host"]["gradsight"] == __import__("gradsight").__version__


def test_an_error_exits_1_with_the_fix(machine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = machine(torch="cpu_wheel", smi=(0, "nvidia-smi_2xH100_550.csv"))
    monkeypatch.setattr(cli_doctor, "gather", lambda: gather(broken.probes()))
    code, out, _ = run_cli("doctor")
    assert code == 1
    assert "error: torch 2.6.0+cpu is a CPU-only build, but this machine has 2 NVIDIA GPUs\n" in out
    assert "  fix: pip install --force-reinstall torch torchvision --index-url " in out
    assert "GPUs                  0: NVIDIA H100 80GB HBM3, 81559 MiB; 1: " in out
    assert out.splitlines()[-1].startswith("gradsight doctor: 1 error(s) to fix")


def test_healthy_gpu_machine_exits_0(machine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    good = machine(torch="cu124_two_gpus", smi=(0, "nvidia-smi_2xH100_550.csv"))
    monkeypatch.setattr(cli_doctor, "gather", lambda: gather(good.probes()))
    code, out, _ = run_cli("doctor", "--require-cuda", "--json")
    data = json.loads(out)
    assert code == 0 and data["exit_code"] == 0 and data["cuda_usable"] is True
    assert [d["code"] for d in data["diagnoses"]] == ["cuda"]
    assert data["facts"]["nvidia"]["driver_version"] == "550.54.15"

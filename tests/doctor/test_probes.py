"""Gathering facts: recorded nvidia-smi, NVML, /proc and cgroup outputs, and this machine."""

from __future__ import annotations

import json
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from gradsight.doctor import Gpu, gather
from gradsight.doctor.probes import (
    NVIDIA_SMI_QUERY,
    container_kind,
    parse_nvidia_smi,
    parse_proc_driver_version,
    probe_nvml,
)

DATA = Path(__file__).parent / "data"


def test_parse_two_gpus_from_recorded_nvidia_smi() -> None:
    driver, gpus = parse_nvidia_smi((DATA / "nvidia-smi_2xH100_550.csv").read_text())
    assert driver == "550.54.15"
    assert gpus == (
        Gpu(0, "NVIDIA H100 80GB HBM3", "81559 MiB"), Gpu(1, "NVIDIA H100 80GB HBM3", "81559 MiB"),
    )  # fmt: skip


def test_a_comma_in_a_gpu_name_stays_in_the_name() -> None:
    assert parse_nvidia_smi("Quadro RTX 8000, Rev. B, 535.104.05, 49152 MiB\n\n")[1] == (
        Gpu(0, "Quadro RTX 8000, Rev. B", "49152 MiB"),
    )


def test_driver_version_from_proc() -> None:
    text = (DATA / "proc_driver_nvidia_version.txt").read_text()
    assert parse_proc_driver_version(text) == "550.54.15"
    assert parse_proc_driver_version("") is None


def test_nvidia_smi_is_asked_for_name_driver_and_memory(machine: Any) -> None:
    m = machine(smi=(0, "nvidia-smi_A100_535.csv"))
    nv = m.facts().nvidia
    assert m.ran == [["/usr/bin/nvidia-smi", *NVIDIA_SMI_QUERY]]
    assert NVIDIA_SMI_QUERY == (
        "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader",
    )  # fmt: skip
    assert (nv.driver_version, nv.driver_source, nv.nvidia_smi) == (
        "535.104.05", "nvidia-smi", "/usr/bin/nvidia-smi",
    )  # fmt: skip
    assert nv.gpus == (Gpu(0, "NVIDIA A100-SXM4-40GB", "40960 MiB"),)


def test_a_failing_nvidia_smi_is_recorded_in_its_words(machine: Any) -> None:
    nv = machine(smi=(9, "nvidia-smi_no-driver-loaded.txt")).facts().nvidia
    assert nv.nvidia_smi_error == (
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running."
    )
    assert nv.driver_version is None and nv.gpus == ()


def test_nvml_then_proc_when_nvidia_smi_is_missing(machine: Any) -> None:
    gpus = (Gpu(0, "NVIDIA L4", "23034 MiB"),)
    nv = machine(nvml=("550.90.07", gpus)).facts().nvidia
    assert (nv.driver_version, nv.driver_source, nv.gpus) == ("550.90.07", "nvml", gpus)
    proc = {"/proc/driver/nvidia/version": (DATA / "proc_driver_nvidia_version.txt").read_text()}
    nv = machine(files=proc).facts().nvidia
    assert (nv.driver_version, nv.driver_source) == ("550.54.15", "/proc/driver/nvidia/version")


def test_only_nvidia_display_controllers_count_as_pci_gpus(machine: Any) -> None:
    pci = [("0x10de", "0x030000"), ("0x10de", "0x040300"), ("0x8086", "0x030000")]
    assert machine(pci=pci).facts().nvidia.pci_gpus == 1


def test_gpu_device_files(machine: Any) -> None:
    dev = ["/dev/nvidia-uvm", "/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl"]
    nv = machine(dev=dev).facts().nvidia
    assert nv.gpu_nodes == 2 and nv.device_files == tuple(sorted(dev))


@pytest.mark.parametrize(
    ("files", "env", "kind"),
    [
        ({"/.dockerenv": ""}, {}, "docker"),
        ({"/run/.containerenv": 'engine="podman-4.9.3"\n'}, {}, "podman"),
        ({"/proc/1/cgroup": "proc_1_cgroup_docker_v1.txt"}, {}, "docker"),
        ({"/proc/1/cgroup": "proc_1_cgroup_kubepods.txt"}, {}, "kubernetes"),
        ({}, {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, "kubernetes"),
        ({"/proc/1/cgroup": "proc_1_cgroup_host.txt"}, {}, None),
    ],
)
def test_container_kind(machine: Any, files: dict[str, str], env: dict[str, str],
                        kind: str | None) -> None:  # fmt: skip
    files = {p: (DATA / v).read_text() if v.endswith(".txt") else v for p, v in files.items()}
    assert container_kind(machine(files=files, env=env).probes()) == kind


def test_environment_and_tools(machine: Any) -> None:
    env = {"CUDA_VISIBLE_DEVICES": "1,0", "LD_LIBRARY_PATH": "/usr/local/cuda/lib64"}
    host = (
        machine(env=env, tools={"dot": "/opt/bin/dot", "google-chrome": "/opt/chrome"}).facts().host
    )
    assert (host.cuda_visible_devices, host.ld_library_path) == ("1,0", "/usr/local/cuda/lib64")
    assert (host.dot, host.chromium) == ("/opt/bin/dot", "/opt/chrome")
    assert machine(tools={}).facts().host.cuda_visible_devices is None


class _FakeNvml(types.ModuleType):
    """pynvml as it answers on a one-GPU machine (older releases return bytes)."""

    def __init__(self, fail_init: bool = False) -> None:
        super().__init__("pynvml")
        self.fail_init, self.shut = fail_init, False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self) -> None:
        self.shut = True

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"535.183.01"

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return b"Tesla T4"

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return types.SimpleNamespace(total=16106127360)


def test_nvml_through_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert probe_nvml() == ("535.183.01", (Gpu(0, "Tesla T4", "15360 MiB"),))
    assert fake.shut
    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml(fail_init=True))
    assert probe_nvml() is None


def test_this_machine() -> None:
    facts = gather()
    data = json.loads(json.dumps(facts.to_dict()))
    assert set(data) == {"host", "torch", "nvidia"}
    assert facts.host.dot == shutil.which("dot")
    if Path("/.dockerenv").exists():
        assert facts.host.container in ("docker", "kubernetes")
    assert data["torch"]["cuda_usable"] == facts.torch.cuda_usable
    assert data["nvidia"]["nvidia_smi"] == shutil.which("nvidia-smi")

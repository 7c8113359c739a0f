"""One test per diagnosis, each from recorded outputs of nvidia-smi, torch and the system files."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gradsight.doctor import CODES, Diagnosis, Facts, Gpu, diagnose, has_errors

SMI_2XH100 = (0, "nvidia-smi_2xH100_550.csv")
SMI_A100 = (0, "nvidia-smi_A100_535.csv")
SMI_RTX3090 = (0, "nvidia-smi_RTX3090_470.csv")
DOCKER = {"/.dockerenv": ""}
NVIDIA_3D = ("0x10de", "0x030200")  # PCI vendor, class: an NVIDIA 3D controller
NVIDIA_VGA = ("0x10de", "0x030000")
NVIDIA_AUDIO = ("0x10de", "0x040300")  # the HDMI audio function of a GeForce: not a GPU
PIP = (
    "pip install --force-reinstall torch torchvision --index-url https://download.pytorch.org/whl/"
)


def by_code(diagnoses: list[Diagnosis]) -> dict[str, Diagnosis]:
    found = {d.code: d for d in diagnoses}
    assert set(found) <= set(CODES) and len(found) == len(diagnoses)
    return found


def problems(diagnoses: list[Diagnosis]) -> list[str]:
    return [d.code for d in diagnoses if d.severity != "info"]


def test_healthy_cpu_machine_is_only_told_cuda_is_not_available(machine: Any) -> None:
    found = diagnose(machine(torch="cpu_wheel").facts())
    assert [(d.code, d.severity) for d in found] == [("cuda", "info")]
    assert found[0].message == "CUDA not available: this torch is a CPU-only build"
    assert not has_errors(found)


def test_cuda_torch_on_a_machine_without_gpu_is_healthy(machine: Any) -> None:
    found = diagnose(machine(torch="cu130_no_driver").facts())
    assert problems(found) == [] and not has_errors(found)
    assert by_code(found)["cuda"].message == (
        "CUDA not available: no NVIDIA GPU found (torch: Found no NVIDIA driver on your system)"
    )


def test_cuda_is_usable_only_with_a_device(machine: Any) -> None:
    two = machine.torch_facts("cu124_two_gpus")
    assert two.cuda_usable and not replace(two, device_count=0).cuda_usable
    assert not machine.torch_facts("cu124_no_gpus_visible").cuda_usable


def test_healthy_gpu_machine(machine: Any) -> None:
    facts = machine(torch="cu124_two_gpus", smi=SMI_2XH100, dev=["/dev/nvidia0", "/dev/nvidia1",
                    "/dev/nvidiactl"], pci=[NVIDIA_3D, NVIDIA_3D]).facts()  # fmt: skip
    found = diagnose(facts, require_cuda=True)
    assert [(d.code, d.severity) for d in found] == [("cuda", "info")]
    assert found[0].message == "CUDA 12.4 works: torch sees 2 GPU(s)"


def test_no_driver_with_a_gpu_on_the_pci_bus(machine: Any) -> None:
    facts = machine(torch="cu130_no_driver", pci=[NVIDIA_VGA, NVIDIA_AUDIO]).facts()
    found = by_code(diagnose(facts))
    d = found["no-driver"]
    assert d.severity == "error" and d.message.startswith("Found no NVIDIA driver on your system")
    assert "shows 1 NVIDIA GPU but" in d.message  # the audio function is not a second GPU
    assert "sudo ubuntu-drivers install" in (d.fix or "")
    assert "cuda-unusable" not in found  # explained already


def test_no_driver_on_windows_points_to_the_download_page(machine: Any) -> None:
    facts = machine(torch="cu130_no_driver", pci=[NVIDIA_VGA], system="Windows").facts()
    fix = by_code(diagnose(facts))["no-driver"].fix
    assert fix == "install the NVIDIA driver from https://www.nvidia.com/Download/index.aspx"


def test_no_driver_module_loaded(machine: Any) -> None:
    facts = machine(torch="cu130_no_driver", smi=(9, "nvidia-smi_no-driver-loaded.txt"),
                    pci=[NVIDIA_3D]).facts()  # fmt: skip
    d = by_code(diagnose(facts))["no-driver"]
    assert d.severity == "error" and "kernel module is not loaded" in d.message
    assert "couldn't communicate with the NVIDIA driver" in d.message
    assert (d.fix or "").startswith("reboot, or load it: sudo modprobe nvidia")


def test_driver_library_mismatch_after_an_update(machine: Any) -> None:
    facts = machine(torch="cu124_no_gpus_visible", pci=[NVIDIA_3D],
                    smi=(18, "nvidia-smi_driver-library-mismatch.txt"),
                    files={"/proc/driver/nvidia/version": "NVRM version: NVIDIA UNIX x86_64 "
                           "Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024"},
                    dev=["/dev/nvidia0", "/dev/nvidiactl"]).facts()  # fmt: skip
    found = by_code(diagnose(facts))
    d = found["driver-library-mismatch"]
    assert d.severity == "error" and "Driver/library version mismatch" in d.message
    assert (d.fix or "").startswith("reboot")
    assert "no-driver" not in found and "gpus-hidden" not in found


def test_container_started_without_gpu_access(machine: Any) -> None:
    # the host's card shows on the PCI bus, but nothing was passed into the container
    facts = machine(torch="cu130_no_driver", files=DOCKER, pci=[NVIDIA_3D]).facts()
    found = by_code(diagnose(facts))
    d = found["container-without-gpu"]
    assert d.severity == "warning" and d.message.startswith("inside a docker container")
    assert "--gpus all" in (d.fix or "") and "deploy.resources.reservations.devices" in (
        d.fix or ""
    )
    assert "capabilities: [gpu]" in (d.fix or "")
    assert problems(list(found.values())) == ["container-without-gpu"]  # not no-driver, not cpu
    required = by_code(diagnose(facts, require_cuda=True))["cuda-required"]
    assert required.severity == "error" and required.fix == d.fix


def test_container_with_cpu_torch_is_only_informed(machine: Any) -> None:
    facts = machine(torch="cpu_wheel", files=DOCKER, pci=[NVIDIA_3D]).facts()
    found = diagnose(facts)
    assert by_code(found)["container-without-gpu"].severity == "info"
    assert not has_errors(found)


def test_container_given_the_gpu_is_healthy(machine: Any) -> None:
    facts = machine(torch="cu124_two_gpus", files=DOCKER, smi=SMI_2XH100,
                    dev=["/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl"]).facts()  # fmt: skip
    assert problems(diagnose(facts)) == []


def test_cpu_only_torch_on_a_gpu_machine(machine: Any) -> None:
    facts = machine(torch="cpu_wheel", smi=SMI_2XH100, pci=[NVIDIA_3D, NVIDIA_3D],
                    dev=["/dev/nvidia0", "/dev/nvidia1"]).facts()  # fmt: skip
    d = by_code(diagnose(facts))["cpu-only-torch"]
    assert d.severity == "error"
    assert d.message == "torch 2.6.0+cpu is a CPU-only build, but this machine has 2 NVIDIA GPUs"
    assert d.fix == PIP + "cu126"  # driver 550 runs CUDA 12.x wheels


def test_cpu_only_torch_with_a_new_driver_gets_the_newest_wheel(machine: Any) -> None:
    gpus = (Gpu(0, "NVIDIA B200", "183359 MiB"),)
    facts = machine(torch="cpu_wheel", nvml=("580.95.05", gpus)).facts()
    assert facts.nvidia.driver_source == "nvml"
    assert by_code(diagnose(facts))["cpu-only-torch"].fix == PIP + "cu130"


def test_driver_too_old_for_the_cuda_of_this_torch(machine: Any) -> None:
    facts = machine(torch="cu130_driver_too_old", smi=SMI_RTX3090, pci=[NVIDIA_VGA],
                    dev=["/dev/nvidia0"]).facts()  # fmt: skip
    found = by_code(diagnose(facts))
    d = found["driver-too-old"]
    assert d.severity == "error"
    assert d.message == (
        "this torch needs CUDA 13.0, which needs NVIDIA driver >= 580; found driver 470.182.03"
    )
    assert (d.fix or "").startswith("update the NVIDIA driver to >= 580, or keep it")
    assert (d.fix or "").endswith(PIP + "cu118")  # 470 runs CUDA 11.x
    assert "cuda-unusable" not in found


@pytest.mark.parametrize(
    ("driver", "too_old"), [("525.60.13", False), ("525.60.12", True), ("535.104.05", False)]
)
def test_cuda_12_needs_driver_525_60_13(machine: Any, driver: str, too_old: bool) -> None:
    gpus = machine(smi=SMI_A100).facts().nvidia.gpus
    facts = machine(torch="cu124_two_gpus", nvml=(driver, gpus)).facts()
    assert ("driver-too-old" in by_code(diagnose(facts))) is too_old


def test_driver_too_old_from_torch_words_alone(machine: Any) -> None:
    # a container given /dev/nvidia0 but not nvidia-smi: only torch knows the driver's CUDA
    facts = machine(torch="cu130_driver_too_old", files=DOCKER,
                    dev=["/dev/nvidia0", "/dev/nvidiactl"]).facts()  # fmt: skip
    d = by_code(diagnose(facts))["driver-too-old"]
    assert d.message.endswith("found a driver for CUDA 12.4")
    assert d.fix == "update the NVIDIA driver to >= 580"


def test_cudnn_mismatch(machine: Any) -> None:
    facts = machine(torch="cu124_cudnn_mismatch", smi=SMI_A100, dev=["/dev/nvidia0"]).facts()
    d = by_code(diagnose(facts))["cudnn-mismatch"]
    assert d.severity == "error"
    assert d.message == "cuDNN mismatch: torch was built with cuDNN 9.1.0 but loads 8.9.2"
    assert d.fix == 'pip install --force-reinstall "nvidia-cudnn-cu12==9.1.0.*"'


def test_cudnn_mismatch_through_ld_library_path(machine: Any) -> None:
    facts = machine(torch="cu124_cudnn_mismatch", smi=SMI_A100,
                    env={"LD_LIBRARY_PATH": "/usr/local/cuda-11.8/lib64"}).facts()  # fmt: skip
    fix = by_code(diagnose(facts))["cudnn-mismatch"].fix or ""
    assert "unset LD_LIBRARY_PATH" in fix and "8.9.2" in fix


def test_a_newer_cudnn_minor_is_compatible(machine: Any) -> None:
    facts = machine(torch="cu124_two_gpus", smi=SMI_2XH100).facts()
    newer = replace(facts.torch, cudnn_loaded="9.3.0")
    older = replace(facts.torch, cudnn_loaded="9.0.0")
    assert "cudnn-mismatch" not in by_code(diagnose(Facts(facts.host, newer, facts.nvidia)))
    assert "cudnn-mismatch" in by_code(diagnose(Facts(facts.host, older, facts.nvidia)))
    next_major = replace(facts.torch, cudnn_built="8.9.7", cudnn_loaded="9.1.0")  # newer: no
    assert "cudnn-mismatch" in by_code(diagnose(Facts(facts.host, next_major, facts.nvidia)))


@pytest.mark.parametrize("value", ["", "-1", "-1,0"])
def test_gpus_hidden_by_cuda_visible_devices(machine: Any, value: str) -> None:
    facts = machine(torch="cu124_no_gpus_visible", smi=SMI_2XH100,
                    env={"CUDA_VISIBLE_DEVICES": value}).facts()  # fmt: skip
    found = diagnose(facts)
    d = by_code(found)["gpus-hidden"]
    assert d.severity == "warning"
    assert d.message == f"CUDA_VISIBLE_DEVICES={value!r} hides all 2 GPUs from CUDA"
    assert (d.fix or "").startswith("unset CUDA_VISIBLE_DEVICES")
    assert problems(found) == ["gpus-hidden"]  # deliberate hiding is allowed: exit 0
    assert by_code(diagnose(facts, require_cuda=True))["cuda-required"].fix == d.fix


def test_gpus_hidden_by_an_index_that_does_not_exist(machine: Any) -> None:
    facts = machine(torch="cu124_no_gpus_visible", smi=SMI_A100,
                    env={"CUDA_VISIBLE_DEVICES": "1"}).facts()  # fmt: skip
    d = by_code(diagnose(facts))["gpus-hidden"]
    assert d.severity == "error"
    assert d.message.startswith("CUDA_VISIBLE_DEVICES='1' names none of the 1 GPU nvidia-smi lists")
    assert (d.fix or "").startswith("export CUDA_VISIBLE_DEVICES=0 ")


def test_a_valid_cuda_visible_devices_is_fine(machine: Any) -> None:
    facts = machine(torch="cu124_two_gpus", smi=SMI_2XH100,
                    env={"CUDA_VISIBLE_DEVICES": "0,1"}).facts()  # fmt: skip
    assert problems(diagnose(facts)) == []


def test_cuda_unusable_for_another_reason(machine: Any) -> None:
    facts = machine(torch="cu126_unknown_error", smi=SMI_A100, dev=["/dev/nvidia0"]).facts()
    d = by_code(diagnose(facts))["cuda-unusable"]
    assert d.severity == "error" and "CUDA unknown error" in d.message
    assert "torch.cuda.init()" in (d.fix or "")


def test_missing_graphviz_and_chromium(machine: Any) -> None:
    found = by_code(diagnose(machine(tools={}).facts()))
    assert found["graphviz-missing"].severity == "warning"
    assert found["graphviz-missing"].fix == (
        "sudo apt-get install graphviz (Fedora: sudo dnf install graphviz)"
    )
    assert found["chromium-missing"].severity == "info"
    mac = by_code(diagnose(machine(torch="macos_mps", tools={}, system="Darwin").facts()))
    assert mac["graphviz-missing"].fix == "brew install graphviz"


def test_mps_on_apple_silicon(machine: Any) -> None:
    found = diagnose(machine(torch="macos_mps", system="Darwin").facts())
    assert [(d.code, d.severity) for d in found] == [("cuda", "info"), ("mps", "info")]


def test_require_cuda_on_a_cpu_machine(machine: Any) -> None:
    found = diagnose(machine(torch="cpu_wheel").facts(), require_cuda=True)
    d = by_code(found)["cuda-required"]
    assert d.severity == "error" and has_errors(found)
    assert (d.fix or "").endswith(PIP + "cu130")  # no driver yet: a new one runs the newest

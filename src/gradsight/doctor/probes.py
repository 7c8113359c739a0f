"""Gather the facts: every read of the machine goes through :class:`Probes`, so tests replace it.

``gather()`` reads the real machine; ``gather(Probes(run=..., torch=...))`` reads recorded
outputs instead, which is how each diagnosis is tested on a machine without a GPU.
"""

from __future__ import annotations

import glob
import importlib
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from gradsight.doctor.facts import Facts, Gpu, HostFacts, NvidiaFacts, TorchFacts
from gradsight.doctor.torch_probe import probe_torch
from gradsight.env import _version

__all__ = [
    "NVIDIA_SMI_QUERY",
    "CommandResult",
    "Probes",
    "container_kind",
    "gather",
    "parse_nvidia_smi",
    "parse_proc_driver_version",
    "probe_nvml",
]

#: The arguments ``gradsight doctor`` passes to ``nvidia-smi``.
NVIDIA_SMI_QUERY = ("--query-gpu=name,driver_version,memory.total", "--format=csv,noheader")
_CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_PROC_DRIVER = "/proc/driver/nvidia/version"
_NVIDIA_PCI_VENDOR = "0x10de"
# (text in /proc/1/cgroup, container kind); kubepods first: Kubernetes may run on docker
_CGROUP_MARKERS = (
    ("kubepods", "kubernetes"), ("libpod", "podman"), ("docker", "docker"),
    ("containerd", "containerd"), ("lxc", "lxc"),
)  # fmt: skip


class CommandResult(NamedTuple):
    """What a command printed and how it exited."""

    returncode: int
    stdout: str
    stderr: str


def _run(argv: Sequence[str]) -> CommandResult | None:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=15, check=False)
    except OSError:
        return None
    except subprocess.TimeoutExpired:  # a wedged driver can hang nvidia-smi
        return CommandResult(124, "", f"{argv[0]} did not answer within 15 s")
    return CommandResult(done.returncode, done.stdout, done.stderr)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _environ() -> Mapping[str, str]:
    return os.environ


def _glob(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern))


def parse_nvidia_smi(stdout: str) -> tuple[str | None, tuple[Gpu, ...]]:
    """Return (driver version, GPUs) from ``nvidia-smi`` run with :data:`NVIDIA_SMI_QUERY`.

    >>> parse_nvidia_smi("NVIDIA A100-SXM4-80GB, 535.104.05, 81920 MiB\\n")
    ('535.104.05', (Gpu(index=0, name='NVIDIA A100-SXM4-80GB', memory='81920 MiB'),))
    """
    driver: str | None = None
    gpus: list[Gpu] = []
    for line in stdout.splitlines():
        fields = [f.strip() for f in line.rsplit(",", 2)]  # a name may hold a comma; the rest not
        if len(fields) != 3 or not fields[0]:
            continue
        name, version, memory = fields
        driver = driver or version
        gpus.append(Gpu(index=len(gpus), name=name, memory=memory or None))
    return driver, tuple(gpus)


def parse_proc_driver_version(text: str) -> str | None:
    """Return the driver version in ``/proc/driver/nvidia/version``.

    >>> parse_proc_driver_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  "
    ...                           "Tue Mar  5 22:23:56 UTC 2024")
    '550.54.15'
    """
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+(?:\.\d+)+)", text)
    return match.group(1) if match else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_nvml() -> tuple[str, tuple[Gpu, ...]] | None:
    """Return (driver version, GPUs) from NVML through ``pynvml`` (nvidia-ml-py), if installed.

    None when pynvml is missing or NVML cannot start (no driver, no GPU access).
    """
    try:
        nvml: Any = importlib.import_module("pynvml")
        nvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError: no library, no driver, driver not loaded
        return None
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        gpus = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            mib = nvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20
            gpus.append(
                Gpu(index=i, name=_text(nvml.nvmlDeviceGetName(handle)), memory=f"{mib} MiB")
            )
    except Exception:  # any NVMLError halfway: report nothing rather than half
        return None
    finally:
        nvml.nvmlShutdown()
    return driver, tuple(gpus)


@dataclass(frozen=True)
class Probes:
    """Where :func:`gather` reads the machine; replace any field with recorded answers.

    Attributes:
        run: runs ``argv``; None when the program cannot be started.
        which: the path of a program on PATH, or None.
        read_text: a file's text, or None when it cannot be read.
        glob: the sorted paths matching a pattern.
        environ: the environment variables.
        system: ``platform.system()``.
        torch: what torch says about itself (see :func:`probe_torch`).
        nvml: the driver version and GPUs from NVML, or None without pynvml or a driver.
    """

    run: Callable[[Sequence[str]], CommandResult | None] = _run
    which: Callable[[str], str | None] = shutil.which
    read_text: Callable[[str], str | None] = _read_text
    glob: Callable[[str], list[str]] = _glob
    environ: Callable[[], Mapping[str, str]] = _environ
    system: Callable[[], str] = platform.system
    torch: Callable[[], TorchFacts] = probe_torch
    nvml: Callable[[], tuple[str, tuple[Gpu, ...]] | None] = probe_nvml


def container_kind(probes: Probes) -> str | None:
    """Return the kind of container this runs in ("docker", "podman", ...), or None."""
    cgroup = probes.read_text("/proc/1/cgroup") or ""
    if "kubepods" in cgroup or "KUBERNETES_SERVICE_HOST" in probes.environ():
        return "kubernetes"
    if probes.read_text("/run/.containerenv") is not None:
        return "podman"
    if probes.read_text("/.dockerenv") is not None:
        return "docker"
    return next((kind for marker, kind in _CGROUP_MARKERS if marker in cgroup), None)


def _first_line(text: str) -> str | None:
    return next((line.strip() for line in text.splitlines() if line.strip()), None)


def _pci_gpus(probes: Probes) -> int:
    count = 0
    for device in probes.glob("/sys/bus/pci/devices/*"):
        vendor = (probes.read_text(f"{device}/vendor") or "").strip()
        klass = (probes.read_text(f"{device}/class") or "").strip()
        count += vendor == _NVIDIA_PCI_VENDOR and klass.startswith("0x03")  # display controller
    return count


def _nvidia(probes: Probes) -> NvidiaFacts:
    smi = probes.which("nvidia-smi")
    driver: str | None = None
    source: str | None = None
    gpus: tuple[Gpu, ...] = ()
    smi_error: str | None = None
    result = probes.run([smi, *NVIDIA_SMI_QUERY]) if smi else None
    if result is not None and result.returncode == 0:
        driver, gpus = parse_nvidia_smi(result.stdout)
        source = "nvidia-smi" if driver else None
    elif result is not None:  # nvidia-smi prints its failures on stdout
        smi_error = _first_line(result.stdout + "\n" + result.stderr) or f"exit {result.returncode}"
    if driver is None and (nvml := probes.nvml()) is not None:
        driver, gpus, source = nvml[0], nvml[1], "nvml"
    if driver is None:
        driver = parse_proc_driver_version(probes.read_text(_PROC_DRIVER) or "")
        source = _PROC_DRIVER if driver else None
    return NvidiaFacts(
        driver_version=driver, driver_source=source, gpus=gpus, nvidia_smi=smi,
        nvidia_smi_error=smi_error, device_files=tuple(probes.glob("/dev/nvidia*")),
        pci_gpus=_pci_gpus(probes),
    )  # fmt: skip


def gather(probes: Probes | None = None) -> Facts:
    """Return what ``gradsight doctor`` needs to know about this machine.

    Args:
        probes: where to read; default the real machine.
    """
    probes = probes or Probes()
    env = probes.environ()
    host = HostFacts(
        python=platform.python_version(),
        platform=platform.platform(),
        system=probes.system(),
        gradsight=_version("gradsight"),
        torchvision=_version("torchvision"),
        container=container_kind(probes),
        cuda_visible_devices=env.get("CUDA_VISIBLE_DEVICES"),
        ld_library_path=env.get("LD_LIBRARY_PATH"),
        dot=probes.which("dot"),
        chromium=next((p for name in _CHROMIUMS if (p := probes.which(name))), None),
    )
    return Facts(host=host, torch=probes.torch(), nvidia=_nvidia(probes))

"""What ``gradsight doctor`` found on this machine: plain, JSON-ready dataclasses."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Facts", "Gpu", "HostFacts", "NvidiaFacts", "TorchFacts"]

_GPU_NODE = re.compile(r"/dev/nvidia\d+$")  # one per GPU; nvidiactl, nvidia-uvm are not GPUs


@dataclass(frozen=True)
class Gpu:
    """One NVIDIA GPU as the driver lists it."""

    index: int
    name: str
    memory: str | None  # as nvidia-smi prints it, e.g. "81559 MiB"


@dataclass(frozen=True)
class TorchFacts:
    """What the installed torch was built with, and what it can load and use here."""

    version: str
    cuda: str | None  # torch.version.cuda: the CUDA runtime it was built for; None = CPU-only
    cuda_available: bool
    device_count: int
    cuda_error: str | None  # why CUDA did not start, in torch's words
    cudnn_built: str | None  # the cuDNN it was compiled against, e.g. "9.1.0"
    cudnn_loaded: str | None  # the cuDNN library it loads at run time
    cudnn_error: str | None  # torch's own compatibility check, when it refused the pair
    mps_built: bool
    mps_available: bool

    @property
    def cuda_usable(self) -> bool:
        """Whether this process can put a tensor on a CUDA GPU."""
        return self.cuda_available and self.device_count > 0


@dataclass(frozen=True)
class NvidiaFacts:
    """The NVIDIA driver and GPUs as the system sees them, whatever torch thinks."""

    driver_version: str | None
    driver_source: str | None  # "nvidia-smi", "nvml" or "/proc/driver/nvidia/version"
    gpus: tuple[Gpu, ...]
    nvidia_smi: str | None  # its path; None when it is not on PATH
    nvidia_smi_error: str | None  # what it printed when it ran and failed
    device_files: tuple[str, ...]  # /dev/nvidia*: there once the driver is loaded (or passed in)
    pci_gpus: int  # NVIDIA display controllers on the PCI bus, seen with or without a driver

    @property
    def gpu_nodes(self) -> int:
        """Return how many ``/dev/nvidiaN`` GPU device files there are."""
        return sum(1 for path in self.device_files if _GPU_NODE.match(path))


@dataclass(frozen=True)
class HostFacts:
    """The interpreter, packages, environment and tools around torch."""

    python: str
    platform: str
    system: str  # platform.system(): "Linux", "Windows" or "Darwin"
    gradsight: str | None
    torchvision: str | None
    container: str | None  # "docker", "podman", "kubernetes", ...; None = not in a container
    cuda_visible_devices: str | None  # None = unset
    ld_library_path: str | None
    dot: str | None  # path of Graphviz's dot, which renders graphs to SVG and PNG
    chromium: str | None  # path of a Chromium or Chrome, which the report's browser test drives


@dataclass(frozen=True)
class Facts:
    """Everything ``gradsight doctor`` looked at, in three groups."""

    host: HostFacts
    torch: TorchFacts
    nvidia: NvidiaFacts

    def gpus_seen(self) -> int:
        """Return how many NVIDIA GPUs this process could reach if the software were right.

        GPUs the driver lists, else GPU device files, else (outside a container, whose
        PCI view shows the host's cards whether or not they were passed in) the PCI bus.
        """
        nv = self.nvidia
        if nv.gpus:
            return len(nv.gpus)
        if nv.gpu_nodes:
            return nv.gpu_nodes
        return nv.pci_gpus if self.host.container is None else 0

    def to_dict(self) -> dict[str, Any]:
        """Return the facts as JSON-ready nested dicts."""
        data = asdict(self)
        data["nvidia"]["gpus"] = [asdict(g) for g in self.nvidia.gpus]
        data["nvidia"]["device_files"] = list(self.nvidia.device_files)
        data["torch"]["cuda_usable"] = self.torch.cuda_usable
        return data

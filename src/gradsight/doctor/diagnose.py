"""Turn the facts into diagnoses: what is wrong, how sure, and the one-line fix.

Each check is a small function of :class:`~gradsight.doctor.facts.Facts`; :func:`diagnose` runs
them in the order a person would fix things (driver first, then the torch wheel, then settings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from gradsight.doctor.drivers import (
    cuda_of_driver_api,
    min_driver,
    parse_version,
    pip_install,
    wheel_index,
)
from gradsight.doctor.facts import Facts

__all__ = ["CODES", "Diagnosis", "Severity", "diagnose", "has_errors"]

Severity = Literal["error", "warning", "info"]

#: Every diagnosis code, in the order :func:`diagnose` checks them.
CODES = (
    "no-driver", "driver-library-mismatch", "container-without-gpu", "cpu-only-torch",
    "driver-too-old", "cudnn-mismatch", "gpus-hidden", "cuda-unusable", "cuda", "mps",
    "graphviz-missing", "chromium-missing", "cuda-required",
)  # fmt: skip
_GPU_CODES = frozenset(CODES[: CODES.index("cuda")])  # the codes that explain why CUDA fails

_INSTALL_DRIVER = {
    "Linux": "install the NVIDIA driver (Ubuntu: sudo ubuntu-drivers install; else "
    "https://www.nvidia.com/Download/index.aspx), then reboot",
    "Windows": "install the NVIDIA driver from https://www.nvidia.com/Download/index.aspx",
}
_INSTALL_GRAPHVIZ = {
    "Linux": "sudo apt-get install graphviz (Fedora: sudo dnf install graphviz)",
    "Darwin": "brew install graphviz",
    "Windows": "winget install graphviz, then open a new terminal",
}
_COMPOSE_GPU = (
    "docker run --gpus all ..., or in compose.yaml under the service: deploy.resources."
    "reservations.devices: [{driver: nvidia, count: all, capabilities: [gpu]}] "
    "(the host needs the NVIDIA Container Toolkit)"
)


@dataclass(frozen=True)
class Diagnosis:
    """One thing ``gradsight doctor`` concluded, with the fix in one line."""

    code: str  # one of CODES
    severity: Severity
    message: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the diagnosis as a JSON-ready dict."""
        return asdict(self)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _no_gpu_access(f: Facts) -> bool:
    """Whether this runs in a container that was given no GPU (its host may well have one)."""
    nv = f.nvidia
    return f.host.container is not None and not nv.device_files and nv.driver_version is None


def _driver_missing(f: Facts) -> Diagnosis | None:
    if _no_gpu_access(f):  # the driver lives on the host: see container-without-gpu
        return None
    error = f.nvidia.nvidia_smi_error or ""
    if "couldn't communicate with the NVIDIA driver" in error:
        return Diagnosis(
            "no-driver", "error",
            f"nvidia-smi cannot reach the NVIDIA driver: its kernel module is not loaded "
            f"(nvidia-smi: {error})",
            "reboot, or load it: sudo modprobe nvidia; if that fails, reinstall the driver for "
            "this kernel: sudo ubuntu-drivers install",
        )  # fmt: skip
    if "Driver/library version mismatch" in error:
        return Diagnosis(
            "driver-library-mismatch", "error",
            f"the NVIDIA kernel module and its libraries are different versions, usually after "
            f"a driver update without a reboot (nvidia-smi: {error})",
            "reboot (or reload the module: sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset "
            "nvidia && sudo modprobe nvidia)",
        )  # fmt: skip
    nv = f.nvidia
    if f.host.container is None and nv.pci_gpus and nv.driver_version is None and not nv.gpu_nodes:
        torch_says = f" (torch: {f.torch.cuda_error})" if f.torch.cuda_error else ""
        return Diagnosis(
            "no-driver", "error",
            f"Found no NVIDIA driver on your system: the PCI bus shows "
            f"{_plural(nv.pci_gpus, 'NVIDIA GPU')} but no driver is loaded{torch_says}",
            _INSTALL_DRIVER.get(f.host.system, _INSTALL_DRIVER["Linux"]),
        )  # fmt: skip
    return None


def _container_without_gpu(f: Facts) -> Diagnosis | None:
    if not _no_gpu_access(f):
        return None
    severity: Severity = "warning" if f.torch.cuda else "info"  # a CUDA torch wants a GPU
    return Diagnosis(
        "container-without-gpu", severity,
        f"inside a {f.host.container} container with no GPU access: no /dev/nvidia* device and "
        f"no NVIDIA driver were passed in (fine if you meant to run on the CPU)",
        _COMPOSE_GPU,
    )  # fmt: skip


def _cpu_only_torch(f: Facts) -> Diagnosis | None:
    gpus = f.gpus_seen()
    if f.torch.cuda is not None or not gpus or f.host.system == "Darwin":
        return None
    index = wheel_index(f.nvidia.driver_version, f.host.system)
    fix = pip_install(index) if index else "update the NVIDIA driver, then install a CUDA torch"
    return Diagnosis(
        "cpu-only-torch", "error",
        f"torch {f.torch.version} is a CPU-only build, but this machine has "
        f"{_plural(gpus, 'NVIDIA GPU')}",
        fix,
    )  # fmt: skip


def _driver_too_old(f: Facts) -> Diagnosis | None:
    cuda, driver, system = f.torch.cuda, f.nvidia.driver_version, f.host.system
    if cuda is None:
        return None
    needed = min_driver(cuda, system)
    error = f.torch.cuda_error or ""
    if driver is not None and needed is not None:
        if parse_version(driver) >= parse_version(needed):
            return None
        found = f"driver {driver}"
    elif "driver on your system is too old" in error:
        api = error.split("found version ", 1)[-1].split(")", 1)[0]
        found = f"a driver for CUDA {cuda_of_driver_api(int(api))}" if api.isdigit() else "driver"
    else:
        return None
    fix = f"update the NVIDIA driver to >= {needed}" if needed else "update the NVIDIA driver"
    index = wheel_index(driver, system) if driver else None
    if index is not None:
        fix += f", or keep it and install a torch that runs on it: {pip_install(index)}"
    return Diagnosis(
        "driver-too-old", "error",
        f"this torch needs CUDA {cuda}, which needs NVIDIA driver >= {needed or '?'}; "
        f"found {found}",
        fix,
    )  # fmt: skip


def _cudnn_mismatch(f: Facts) -> Diagnosis | None:
    t = f.torch
    built, loaded = t.cudnn_built, t.cudnn_loaded
    if built is None or loaded is None:
        return None
    b, ld = parse_version(built), parse_version(loaded)
    if b[:1] == ld[:1] and ld[:2] >= b[:2] and not t.cudnn_error:  # torch's own rule
        return None
    if f.host.ld_library_path:
        fix = (
            f"torch loads cuDNN {loaded} through LD_LIBRARY_PATH instead of the {built} it "
            f"ships with: unset LD_LIBRARY_PATH (or drop the cuDNN folder from it)"
        )
    else:
        cuda_major = parse_version(t.cuda or "12")[0]
        fix = f'pip install --force-reinstall "nvidia-cudnn-cu{cuda_major}=={built}.*"'
    return Diagnosis(
        "cudnn-mismatch", "error",
        f"cuDNN mismatch: torch was built with cuDNN {built} but loads {loaded}",
        fix,
    )  # fmt: skip


def _hides_all(value: str) -> bool:
    """Whether CUDA_VISIBLE_DEVICES leaves no GPU: CUDA stops at the first invalid entry."""
    first = value.split(",")[0].strip()
    return first == "" or first.startswith("-")


def _gpus_hidden(f: Facts) -> Diagnosis | None:
    value, t = f.host.cuda_visible_devices, f.torch
    gpus = len(f.nvidia.gpus) or f.nvidia.gpu_nodes
    if value is None or not gpus:
        return None
    shown = repr(value)
    if _hides_all(value):
        return Diagnosis(
            "gpus-hidden", "warning",
            f"CUDA_VISIBLE_DEVICES={shown} hides all {_plural(gpus, 'GPU')} from CUDA",
            "unset CUDA_VISIBLE_DEVICES (or export CUDA_VISIBLE_DEVICES=0 to use the first GPU)",
        )  # fmt: skip
    quiet = t.cuda_error is None or "No CUDA GPUs are available" in t.cuda_error
    if t.cuda and t.device_count == 0 and quiet:
        return Diagnosis(
            "gpus-hidden", "error",
            f"CUDA_VISIBLE_DEVICES={shown} names none of the {_plural(gpus, 'GPU')} "
            f"nvidia-smi lists (indices 0..{gpus - 1}), so torch sees no GPU",
            f"export CUDA_VISIBLE_DEVICES={','.join(map(str, range(gpus)))} (indices, or UUIDs "
            "from nvidia-smi -L), or unset it",
        )  # fmt: skip
    return None


_CHECKS: tuple[Callable[[Facts], Diagnosis | None], ...] = (
    _driver_missing, _container_without_gpu, _cpu_only_torch, _driver_too_old, _cudnn_mismatch,
    _gpus_hidden,
)  # fmt: skip


def _cuda_line(f: Facts) -> Diagnosis:
    t = f.torch
    if t.cuda_usable:
        return Diagnosis("cuda", "info", f"CUDA {t.cuda} works: torch sees {t.device_count} GPU(s)")
    if t.cuda is None:
        why = "this torch is a CPU-only build"
    elif not f.gpus_seen():
        why = "no NVIDIA GPU found" + (f" (torch: {t.cuda_error})" if t.cuda_error else "")
    else:
        why = t.cuda_error or "torch sees no CUDA GPU"
    return Diagnosis("cuda", "info", f"CUDA not available: {why}")


def _unexplained(f: Facts, found: list[Diagnosis]) -> Diagnosis | None:
    """A CUDA torch that fails on a machine with a GPU, for a reason no check above knows."""
    t = f.torch
    if t.cuda is None or t.cuda_usable or not f.gpus_seen():
        return None
    if any(d.severity == "error" or d.code == "gpus-hidden" for d in found):
        return None
    return Diagnosis(
        "cuda-unusable", "error",
        f"torch (CUDA {t.cuda}) cannot use the {_plural(f.gpus_seen(), 'GPU')} here: "
        f"{t.cuda_error or 'it sees none'}",
        "run: python -c 'import torch; torch.cuda.init()' for the full error, check "
        "sudo dmesg | grep -i nvrm, and reboot if the driver was updated",
    )  # fmt: skip


def _tools(f: Facts) -> list[Diagnosis]:
    found = []
    if f.torch.mps_available:
        found.append(Diagnosis("mps", "info", "MPS (Apple GPU) is available: use --device mps"))
    if f.host.dot is None:
        found.append(Diagnosis(
            "graphviz-missing", "warning",
            "Graphviz's dot is not on PATH: gradsight graph can write .dot and .json, not .svg "
            "or .png",
            _INSTALL_GRAPHVIZ.get(f.host.system, _INSTALL_GRAPHVIZ["Linux"]),
        ))  # fmt: skip
    if f.host.chromium is None:
        found.append(Diagnosis(
            "chromium-missing", "info",
            "no Chromium or Chrome on PATH: only the report's browser test needs one",
            "sudo apt-get install chromium (macOS: brew install --cask chromium)",
        ))  # fmt: skip
    return found


def _cuda_required(f: Facts, found: list[Diagnosis]) -> Diagnosis:
    cause = next((d for d in found if d.code in _GPU_CODES), None)
    if cause is not None:
        return Diagnosis(
            "cuda-required", "error",
            f"CUDA is required (--require-cuda) but not usable here: see {cause.code}", cause.fix,
        )  # fmt: skip
    if f.torch.cuda is None:
        index = wheel_index(f.nvidia.driver_version, f.host.system) or "cu126"
        fix = (
            f"run where there is an NVIDIA GPU and driver, with a CUDA torch: {pip_install(index)}"
        )
    else:
        fix = (
            "run on a machine with an NVIDIA GPU and driver (in a container: docker run --gpus all)"
        )
    return Diagnosis(
        "cuda-required", "error", "CUDA is required (--require-cuda) but not usable here", fix
    )


def diagnose(facts: Facts, *, require_cuda: bool = False) -> list[Diagnosis]:
    """Return the diagnoses of ``facts``, problems first, in the order to fix them.

    Args:
        facts: from :func:`~gradsight.doctor.probes.gather`.
        require_cuda: add an error when CUDA is not usable (``--require-cuda``).
    """
    found = [d for check in _CHECKS if (d := check(facts)) is not None]
    if (extra := _unexplained(facts, found)) is not None:
        found.append(extra)
    found += [_cuda_line(facts), *_tools(facts)]
    if require_cuda and not facts.torch.cuda_usable:
        found.append(_cuda_required(facts, found))
    return found


def has_errors(diagnoses: list[Diagnosis]) -> bool:
    """Whether any diagnosis is an error (``gradsight doctor`` then exits 1)."""
    return any(d.severity == "error" for d in diagnoses)

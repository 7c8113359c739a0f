"""A fake machine for ``gradsight doctor``: recorded probe outputs behind :class:`Probes`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gradsight.doctor import CommandResult, Facts, Gpu, Probes, TorchFacts, gather

DATA = Path(__file__).parent / "data"
VIRTIO_NET = ("0x1af4", "0x020000")  # PCI (vendor, class): a virtio network card


def recorded(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def recorded_torch(name: str) -> TorchFacts:
    return TorchFacts(**json.loads(recorded("torch_probes.json"))[name])


@dataclass
class Machine:
    """What each probe answers. ``smi``: (exit code, recorded output file) or None: not installed.

    Tests get this class from the ``machine`` fixture (conftest is not importable).
    """

    torch: str = "cpu_wheel"
    smi: tuple[int, str] | None = None
    pci: Sequence[tuple[str, str]] = (VIRTIO_NET,)
    dev: Sequence[str] = ()
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    system: str = "Linux"
    tools: dict[str, str] = field(
        default_factory=lambda: {"dot": "/usr/bin/dot", "chromium": "/usr/bin/chromium"}
    )
    nvml: tuple[str, tuple[Gpu, ...]] | None = None
    ran: list[list[str]] = field(default_factory=list)

    @staticmethod
    def torch_facts(name: str) -> TorchFacts:
        return recorded_torch(name)

    def _run(self, argv: Sequence[str]) -> CommandResult | None:
        self.ran.append(list(argv))
        if self.smi is None or argv[0] != "/usr/bin/nvidia-smi":
            return None
        code, name = self.smi
        return CommandResult(code, recorded(name), "")

    def _which(self, name: str) -> str | None:
        if name == "nvidia-smi":
            return "/usr/bin/nvidia-smi" if self.smi else None
        return self.tools.get(name)

    def _files(self) -> dict[str, str]:
        files = dict(self.files)
        for i, (vendor, klass) in enumerate(self.pci):
            files[f"/sys/bus/pci/devices/0000:{i:02x}:00.0/vendor"] = vendor + "\n"
            files[f"/sys/bus/pci/devices/0000:{i:02x}:00.0/class"] = klass + "\n"
        return files

    def _glob(self, pattern: str) -> list[str]:
        if pattern == "/dev/nvidia*":
            return sorted(self.dev)
        if pattern == "/sys/bus/pci/devices/*":
            return [f"/sys/bus/pci/devices/0000:{i:02x}:00.0" for i in range(len(self.pci))]
        raise AssertionError(f"unexpected glob {pattern}")

    def probes(self) -> Probes:
        files = self._files()
        env: Mapping[str, str] = self.env
        return Probes(
            run=self._run, which=self._which, read_text=files.get, glob=self._glob,
            environ=lambda: env, system=lambda: self.system,
            torch=lambda: recorded_torch(self.torch), nvml=lambda: self.nvml,
        )  # fmt: skip

    def facts(self) -> Facts:
        return gather(self.probes())


@pytest.fixture
def machine() -> type[Machine]:
    return Machine

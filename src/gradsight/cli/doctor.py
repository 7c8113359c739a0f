"""``gradsight doctor``: versions, CUDA, driver and GPUs, and what to fix, in one screen."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from gradsight.cli.app import ExitCode
from gradsight.doctor import Diagnosis, Facts, diagnose, gather, has_errors

__all__ = ["facts_rows", "register", "run_doctor"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gradsight doctor`` to the subcommands."""
    parser = sub.add_parser(
        "doctor",
        help="check Python, torch, CUDA, cuDNN, the NVIDIA driver and tools; say what to fix",
        description="Show the versions of Python, torch, torchvision and gradsight, the CUDA and "
        "cuDNN torch was built with and loads, the NVIDIA driver and GPUs, CUDA_VISIBLE_DEVICES, "
        "MPS, whether this runs in a container, and Graphviz and Chromium; then diagnose what "
        "keeps CUDA from working, each with a one-line fix. Exit 0 when healthy (a machine "
        "without a GPU is healthy), 1 when a diagnosis is an error.",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object: facts and diagnoses"
    )
    parser.add_argument(
        "--require-cuda", action="store_true", help="exit 1 unless torch can use a CUDA GPU"
    )
    parser.set_defaults(command=run_doctor)


def _or(value: object, missing: str = "not found") -> str:
    return missing if value is None else str(value)


def facts_rows(facts: Facts) -> list[tuple[str, str]]:
    """Return the (label, value) lines of the facts, as ``gradsight doctor`` shows them."""
    h, t, nv = facts.host, facts.torch, facts.nvidia
    if t.cuda is None:
        build = "CPU-only build"
    else:
        build = f"CUDA {t.cuda}, cuDNN {_or(t.cudnn_loaded, 'none')} loaded / "
        build += f"{_or(t.cudnn_built, 'none')} built with"
    if t.cuda_usable:
        cuda = f"yes: {t.device_count} device(s)"
    else:
        cuda = "no" + (f" ({t.cuda_error})" if t.cuda_error else "")
    driver = f"{nv.driver_version} (from {nv.driver_source})" if nv.driver_version else "not found"
    smi = nv.nvidia_smi_error or _or(nv.nvidia_smi, "not on PATH")
    gpus = "; ".join(f"{g.index}: {g.name}, {_or(g.memory, '?')}" for g in nv.gpus) or "none listed"
    rows = [
        ("Python", f"{h.python} ({h.platform})"),
        ("gradsight", _or(h.gradsight)),
        ("torch", f"{t.version}: {build}"),
        ("torchvision", _or(h.torchvision)),
        ("CUDA usable", cuda),
        ("NVIDIA driver", driver),
        ("nvidia-smi", smi),
        ("GPUs", gpus),
        ("/dev/nvidia*", " ".join(nv.device_files) or "none"),
        ("CUDA_VISIBLE_DEVICES", "(unset)" if h.cuda_visible_devices is None
         else repr(h.cuda_visible_devices)),
        ("MPS", "available" if t.mps_available else ("built, not available" if t.mps_built
                                                   else "not built")),
        ("container", _or(h.container, "none detected")),
        ("Graphviz dot", _or(h.dot)),
        ("Chromium", _or(h.chromium)),
    ]  # fmt: skip
    return rows


def _summary(facts: Facts, diagnoses: list[Diagnosis]) -> str:
    errors = sum(d.severity == "error" for d in diagnoses)
    warnings = sum(d.severity == "warning" for d in diagnoses)
    cuda = "CUDA usable" if facts.torch.cuda_usable else "CUDA not usable"
    if errors:
        return f"gradsight doctor: {errors} error(s) to fix, {warnings} warning(s); {cuda}"
    return f"gradsight doctor: healthy ({warnings} warning(s)); {cuda}"


def run_doctor(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run ``gradsight doctor`` and return its exit code."""
    facts = gather()
    diagnoses = diagnose(facts, require_cuda=args.require_cuda)
    code = ExitCode.FAILED if has_errors(diagnoses) else ExitCode.OK
    if args.json:
        data = {
            "facts": facts.to_dict(),
            "diagnoses": [d.to_dict() for d in diagnoses],
            "cuda_usable": facts.torch.cuda_usable,
            "exit_code": int(code),
        }
        out.out(json.dumps(data, indent=2), highlight=False)
        return code
    rows = facts_rows(facts)
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        out.print(f"{label:<{width}}  {value}", markup=False, highlight=False)
    out.print()
    for d in diagnoses:
        out.print(f"{d.severity}: {d.message}", markup=False, highlight=False)
        if d.fix:
            out.print(f"  fix: {d.fix}", markup=False, highlight=False)
    out.print(_summary(facts, diagnoses), markup=False, highlight=False)
    return code

"""``gradsight export``: a run's weights as safetensors, or as ONNX checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from gradsight.export import FORMATS, export_onnx, export_safetensors

__all__ = ["register", "run_export"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gradsight export`` to the subcommands."""
    parser = sub.add_parser(
        "export",
        help="export a run's final weights as safetensors or ONNX",
        description="Write RUN_DIR/model.pt as safetensors, or the model as ONNX (compared "
        "with PyTorch on a test batch when onnxruntime is installed).",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a finished run folder")
    parser.add_argument("--format", choices=FORMATS, default="safetensors", dest="export_format")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="file to write")
    parser.set_defaults(command=run_export)


def run_export(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run ``gradsight export`` and return its exit code."""
    if args.export_format == "safetensors":
        count = export_safetensors(args.run_dir, args.out)
        out.print(f"gradsight: wrote {count} tensors to {args.out}", highlight=False)
        return 0
    check = export_onnx(args.run_dir, args.out)
    out.print(f"gradsight: wrote {args.out}", highlight=False)
    if check.max_abs_diff is None:
        out.print("gradsight: onnxruntime not installed; the graph was not run", highlight=False)
    else:
        out.print(
            f"gradsight: ONNX vs PyTorch on {check.batch} test images: largest difference "
            f"{check.max_abs_diff:.3g}",
            highlight=False,
        )
    return 0

"""``gradsight trace``: one training step, then the backward pass node by node."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from gradsight.cli.options import add_data_model_options, config_from_args
from gradsight.errors import ConfigError
from gradsight.reports.trace_render import trace_text, trace_to_json
from gradsight.train import prepare
from gradsight.train.snapshot import trace_of_one_step

__all__ = ["register", "run_trace"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gradsight trace`` to the subcommands."""
    parser = sub.add_parser(
        "trace",
        help="replay loss.backward() node by node, in the order it runs",
        description="Run one training step on one batch and list every backward node in the "
        "order the autograd engine ran it: the gradient it received and produced (shape, L2 "
        "norm), the share of zeros, its time, and what it computed.",
    )
    add_data_model_options(parser)
    g = parser.add_argument_group("trace")
    g.add_argument("--json", action="store_true", help="print JSON instead of the table")
    g.add_argument("--out", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    g.add_argument("--batch-size", type=int, default=4, help="images in the batch (default 4)")
    g.add_argument(
        "--detail", choices=("full", "norm"), default="full",
        help="full (default): norm, max |g|, zeros and NaN/Inf of every gradient, and the "
        "ReLU/max-pool facts; norm: only the L2 norm and NaN/Inf, a cheaper trace for big "
        "models",
    )  # fmt: skip
    parser.set_defaults(command=run_trace)


def run_trace(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run ``gradsight trace`` and return its exit code."""
    if args.batch_size <= 0:
        raise ConfigError(f"--batch-size must be positive, got {args.batch_size}")
    if args.out is not None and args.out.is_dir():
        raise ConfigError(
            f"--out {args.out} is a folder; give a file name such as {args.out}/trace.json"
        )
    trace = trace_of_one_step(prepare(config_from_args(args)), args.batch_size, args.detail)
    if args.out is not None:
        if args.json:
            args.out.write_text(trace_to_json(trace), encoding="utf-8")
        else:
            args.out.write_text(trace_text(trace), encoding="utf-8")
        out.print(
            f"gradsight: wrote {args.out} ({len(trace.events)} backward nodes)", highlight=False
        )
    else:
        text = trace_to_json(trace) if args.json else trace_text(trace)
        out.out(text, end="", highlight=False)
    return 0

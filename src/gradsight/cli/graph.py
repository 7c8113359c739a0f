"""``gradsight graph``: one training step on one batch, then write its autograd graph."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from gradsight.cli.options import add_data_model_options, config_from_args
from gradsight.errors import ConfigError
from gradsight.reports.graph_files import LEVELS, graph_bytes
from gradsight.reports.graph_render import FORMATS
from gradsight.train import prepare
from gradsight.train.snapshot import trace_of_one_step

__all__ = ["register", "run_graph"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gradsight graph`` to the subcommands."""
    parser = sub.add_parser(
        "graph",
        help="draw the real autograd graph of one training step, with gradient sizes",
        description="Run one training step (forward, loss, backward, SGD step) on one batch "
        "and write the backward graph: every autograd op (numbered #k in the order backward "
        "ran it), the parameters it feeds, and on each edge the shape and L2 norm of the "
        "gradient that flowed along it.",
    )
    add_data_model_options(parser)
    g = parser.add_argument_group("graph")
    g.add_argument("--level", choices=LEVELS, default="op", help="op (default) or module")
    g.add_argument(
        "--format", choices=FORMATS, help="svg, png, dot or json (default: from --out, else svg)"
    )
    g.add_argument("--out", type=Path, metavar="FILE", help="output file (default graph.FORMAT)")
    g.add_argument(
        "--direction", choices=("backward", "forward"), default="backward",
        help="backward: edges loss -> parameters, as gradients flow (default); forward: reversed",
    )  # fmt: skip
    g.add_argument(
        "--show-params", action="store_true",
        help="draw parameters as separate AccumulateGrad leaves instead of inside their op",
    )  # fmt: skip
    g.add_argument("--batch-size", type=int, default=4, help="images in the batch (default 4)")
    parser.set_defaults(command=run_graph)


def _format(args: argparse.Namespace) -> tuple[str, Path]:
    fmt = args.format
    if fmt is None:
        suffix = args.out.suffix.lstrip(".").lower() if args.out else ""
        fmt = suffix if suffix in FORMATS else "svg"
    out = args.out or Path(f"graph.{fmt}")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name such as {out}/graph.{fmt}")
    return fmt, out


def run_graph(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run ``gradsight graph`` and return its exit code."""
    fmt, path = _format(args)
    config = config_from_args(args)
    if args.batch_size <= 0:
        raise ConfigError(f"--batch-size must be positive, got {args.batch_size}")
    prepared = prepare(config)
    trace = trace_of_one_step(prepared, args.batch_size)
    graph = trace.graph
    data = graph_bytes(
        graph, fmt, level=args.level, direction=args.direction,
        fold_params=not args.show_params, steps=trace.steps(),
    )  # fmt: skip  # rendered before writing, so a missing Graphviz leaves no empty file
    path.write_bytes(data)
    ops = sum(1 for n in graph.nodes if n.kind == "op")
    out.print(
        f"gradsight: wrote {path} ({args.level} level, {fmt}): {ops} ops, "
        f"{len(graph.params())} parameters with gradients",
        highlight=False,
    )
    for p in graph.no_grad_params:
        out.print(f"  no gradient: {p.explanation}", highlight=False)
    return 0

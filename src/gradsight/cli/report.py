"""``gradsight report``: one self-contained ``report.html`` for a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from gradsight.cli.app import ExitCode
from gradsight.errors import ConfigError
from gradsight.reports.html import write_report

__all__ = ["register", "run_report"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gradsight report`` to the subcommands."""
    parser = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a run folder",
        description="Write one self-contained report.html (no network requests) for RUN_DIR: "
        "summary, curves, gradient flow, the graphs, a backward step-through, monitor events "
        "and checkpoints. Works on finished and crashed runs.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder")
    parser.add_argument(
        "--out", type=Path, default=None, metavar="FILE", help="default RUN_DIR/report.html"
    )
    parser.set_defaults(command=run_report)


def run_report(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run ``gradsight report`` and return its exit code."""
    run_dir: Path = args.run_dir
    if not run_dir.is_dir():
        raise ConfigError(
            f"RUN_DIR {run_dir} is not a folder; pass a run folder of gradsight train"
        )
    if not any((run_dir / name).exists() for name in ("config.json", "metrics.jsonl")):
        raise ConfigError(
            f"{run_dir} has neither config.json nor metrics.jsonl; pass a run folder of "
            "gradsight train"
        )
    if args.out is not None and not args.out.parent.is_dir():
        raise ConfigError(f"--out {args.out}: folder {args.out.parent} does not exist; create it")
    path = write_report(run_dir, args.out)
    out.print(f"gradsight: wrote {path}", highlight=False)
    return ExitCode.OK

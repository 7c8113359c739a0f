"""The ``gradsight`` command: parse options, run a subcommand, map errors to exit codes."""

from __future__ import annotations

import argparse
import enum
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import IO, NoReturn

from rich.console import Console

from gradsight import __version__
from gradsight.errors import GradsightError

__all__ = ["ExitCode", "UsageError", "build_parser", "main"]


class ExitCode(enum.IntEnum):
    """Exit statuses of the ``gradsight`` command."""

    OK = 0
    FAILED = 1  # training ran but failed or was stopped by an observer
    USAGE = 2  # bad input: options, data, model, device
    NONFINITE = 3  # training stopped on a NaN/Inf gradient (--on-nonfinite stop)
    INTERRUPTED = 130  # Ctrl-C


class UsageError(GradsightError):
    """A command-line option could not be parsed."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


Command = Callable[[argparse.Namespace, Console, Console], int]


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every subcommand; each sets ``args.command`` to its handler.

    Each command module has ``register(subparsers)``, which adds its subparser and sets
    ``command`` to a function ``(args, out, err) -> exit code``.
    """
    from gradsight.cli import check, doctor, explain, export, graph, report, trace, train

    parser = _Parser(
        prog="gradsight",
        description="Make backpropagation in a PyTorch CNN visible, and catch the gradient "
        "that breaks a training run.",
    )
    parser.add_argument("--version", action="version", version=f"gradsight {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    # one module per command, in --help order
    for module in (train, check, graph, trace, explain, report, export, doctor):
        module.register(sub)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run ``gradsight`` with ``argv`` and return the exit code (tests call this in-process).

    Args:
        argv: the arguments after the program name; default ``sys.argv[1:]``.
        stdout: where progress and results go; default the real stdout.
        stderr: where errors go; default the real stderr.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    out = Console(file=stdout, soft_wrap=True) if stdout is not None else Console(soft_wrap=True)
    err = Console(file=stderr, stderr=stderr is None, highlight=False, soft_wrap=True)

    def show_warning(message: Warning | str, category: type[Warning], *_: object) -> None:
        err.print(f"gradsight: warning: {message}", markup=False)

    warnings.showwarning = show_warning  # type: ignore[assignment]  # one line, no source
    try:
        args = build_parser().parse_args(args_list)
        command: Command | None = getattr(args, "command", None)
        if command is None:
            raise UsageError("gradsight: no command given; try: gradsight train (see --help)")
        args.argv = ["gradsight", *args_list]
        return command(args, out, err)
    except GradsightError as exc:
        err.print(f"gradsight: error: {exc}", markup=False)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        err.print("gradsight: interrupted", markup=False)
        return ExitCode.INTERRUPTED

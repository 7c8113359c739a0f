"""The command-line interface; the only layer that parses arguments or prints."""

from gradsight.cli.app import ExitCode, build_parser, main

__all__ = ["ExitCode", "build_parser", "main"]

"""The README documents exactly the options the CLI has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from gradsight.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _train_options() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train = sub.choices["train"]
    return {s for a in train._actions for s in a.option_strings if s.startswith("--")} - {
        "--help",
        "--dataset",  # an alias of --data
    }


def test_readme_option_table_matches_cli() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## `gradsight train`", 1)[1].split("### The run folder", 1)[0]
    table_rows = [line for line in section.splitlines() if line.startswith("| `--")]
    documented = set(re.findall(r"`(--[a-z-]+)", "\n".join(table_rows)))
    assert documented == _train_options()


def test_readme_keeps_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci

"""The README documents exactly the options the CLI has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from gradsight.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _options(command: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions = sub.choices[command]._actions
    return {s for a in actions for s in a.option_strings if s.startswith("--")} - {
        "--help",
        "--dataset",  # an alias of --data
    }


def _table_options(start: str, end: str) -> set[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split(start, 1)[1].split(end, 1)[0]
    table_rows = [line for line in section.splitlines() if line.startswith("| `--")]
    return set(re.findall(r"`(--[a-z-]+)", "\n".join(table_rows)))


def test_readme_option_tables_match_cli() -> None:
    assert _table_options("## `gradsight train`", "### The run folder") == _options("train")
    shared = {
        "--data", "--data-dir", "--download", "--image-size", "--skip-bad-images", "--model",
        "--seed", "--device",
    }  # fmt: skip
    assert shared <= _options("graph")  # told in prose: "as gradsight train does"
    graph_table = _table_options("## `gradsight graph`", "### Graph JSON format")
    assert graph_table == _options("graph") - shared
    text = README.read_text(encoding="utf-8")
    trace_part = text.split("## `gradsight trace`", 1)[1].split("From Python", 1)[0]
    documented = set(re.findall(r"`(--[a-z-]+)", trace_part))
    assert documented == _options("trace") - shared


def test_readme_keeps_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_every_readme_python_block_compiles_and_imports_what_exists() -> None:
    import ast
    import importlib

    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    missing = []
    for block in blocks:
        tree = ast.parse(block)  # a syntax error fails here
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gradsight"):
                assert not node.module.startswith("gradsight.observers"), node.module  # 0.1's
                module = importlib.import_module(node.module)  # type: ignore[arg-type]
                missing += [f"{node.module}.{a.name}" for a in node.names
                            if not hasattr(module, a.name)]  # fmt: skip
    assert missing == []

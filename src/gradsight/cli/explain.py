"""``gradsight explain``: the article's walk through backpropagation, checked against autograd."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from gradsight.cli.app import ExitCode
from gradsight.errors import ConfigError
from gradsight.explain import ExplainConfig, explain
from gradsight.reports.explain_render import render_markdown, render_terminal, verdict

__all__ = ["register", "run_explain"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``gradsight explain`` to the subcommands."""
    parser = sub.add_parser(
        "explain",
        help="walk through backpropagation in SimpleCNN, checking every gradient by hand",
        description="Compute the article's walk-through on a real batch with a real SimpleCNN: "
        "y = x^2 + 3x + 1, the forward and backward pass layer by layer (each gradient also "
        "computed by hand in NumPy and compared with autograd in float64), why zero_grad "
        "matters, and one SGD step. Exits 1 if any comparison exceeds its tolerance.",
    )
    parser.add_argument(
        "--batch-size", type=int, default=4, help="images in the batch (default 4, as the article)"
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="seeds the weights and the batch (default 42)"
    )
    parser.add_argument(
        "--markdown", type=Path, metavar="FILE", help="also write the walk-through as Markdown"
    )
    parser.add_argument(
        "--like-article", action="store_true",
        help="the article's setting: a random Nx3x32x32 batch with random labels instead of "
        "bundled Fashion-MNIST test images",
    )  # fmt: skip
    parser.set_defaults(command=run_explain)


def _check_markdown_path(path: Path) -> None:
    if path.is_dir():
        raise ConfigError(f"--markdown {path} is a folder; give a file name such as {path}/x.md")
    if not path.parent.is_dir():
        raise ConfigError(
            f"--markdown {path}: folder {path.parent} does not exist; create it or choose "
            "another path"
        )


def run_explain(args: argparse.Namespace, out: Console, err: Console) -> int:
    """Run ``gradsight explain`` and return its exit code: 1 if any comparison failed."""
    config = ExplainConfig(
        batch_size=args.batch_size, seed=args.seed, like_article=args.like_article
    )
    if args.markdown is not None:
        _check_markdown_path(args.markdown)
    result = explain(config)
    out.print(render_terminal(result), highlight=False)
    if args.markdown is not None:
        try:
            args.markdown.write_text(render_markdown(result), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--markdown {args.markdown}: cannot write: {exc.strerror}") from exc
        out.print(f"Markdown: {args.markdown}", highlight=False)
    if not result.ok:
        err.print(f"gradsight: explain: {verdict(result)}", markup=False)
        return ExitCode.FAILED
    return ExitCode.OK

"""``gradsight explain`` run in-process: the article's walk on real data, checked in the run."""

from __future__ import annotations

import argparse
import io
import re
from pathlib import Path

import numpy as np
import pytest

from gradsight.cli import ExitCode, build_parser, main
from gradsight.reports.explain_render import SECTION_TITLES


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_default_walk_on_bundled_data(tmp_path: Path) -> None:
    md = tmp_path / "walk.md"
    code, out, err = run_cli("explain", "--markdown", str(md))
    assert code == ExitCode.OK and err == ""
    assert "4 test images of fashion-mnist-mini, seed 42" in out
    assert all(title in out for title in SECTION_TITLES)
    assert "autograd (y.backward(); x.grad): 7; by hand, dy/dx = 2x + 3 = 7" in out
    assert "conv1.weight.grad  [16, 1, 3, 3]" in out and "fc.weight.grad  [10, 3136]" in out
    assert "MISMATCH" not in out and "All 27 comparisons with PyTorch match." in out
    assert out.rstrip().endswith(f"Markdown: {md}")
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# gradsight explain") and "### `fc.weight.grad` [10, 3136]" in text


def test_like_article_prints_the_articles_shapes() -> None:
    code, out, _ = run_cli("explain", "--like-article")
    assert code == 0
    assert "random 4x3x32x32 batch with random labels" in out
    assert "conv1.weight.grad  [16, 3, 3, 3]" in out and "fc.weight.grad  [10, 4096]" in out
    assert "[4, 3, 32, 32]" in out and "Linear(4096->10)" in out


def test_same_seed_same_output_other_seed_differs() -> None:
    a = run_cli("explain", "--batch-size", "2", "--seed", "3")
    b = run_cli("explain", "--batch-size", "2", "--seed", "3")
    c = run_cli("explain", "--batch-size", "2", "--seed", "4")
    assert a == b and a[0] == c[0] == 0
    assert a[1] != c[1]


def test_broken_numpy_backward_exits_1_and_says_which(monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong_pool_routing(dout: np.ndarray, cache: object) -> np.ndarray:
        return np.repeat(np.repeat(dout, 2, axis=2), 2, axis=3) / 4  # spreads, not routes

    monkeypatch.setattr("gradsight.numpy_ref.simple_cnn.maxpool2d_backward", wrong_pool_routing)
    code, out, err = run_cli("explain", "--batch-size", "2")
    assert code == ExitCode.FAILED == 1
    assert "dL/drelu  [2, 16, 28, 28]  max-pool routing" in out
    assert out.count("MISMATCH") >= 4  # relu, conv1, conv1.bias, conv1.weight, sgd rows
    assert err.startswith("gradsight: explain: ") and "checks FAILED: backward dL/drelu (rel" in err
    assert "backward conv1.weight.grad" in err and "backward fc.weight.grad" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "--batch-size must be positive, got 0"),
        (["--batch-size", "-2"], "--batch-size must be positive, got -2"),
        (["--batch-size", "2001"], "larger than the 2000 images of fashion-mnist-mini's test"),
        (["--batch-size", "5000", "--like-article"], "too large for --like-article"),
        (["--batch-size", "four"], "invalid int value: 'four'"),
        (["--markdown", "/nonexistent/dir/walk.md"], "folder /nonexistent/dir does not exist"),
        (["--lr", "0.1"], "unrecognized arguments: --lr 0.1"),
    ],
)
def test_bad_options_one_line_exit_2(args: list[str], message: str) -> None:
    code, out, err = run_cli("explain", *args)
    assert code == ExitCode.USAGE
    assert message in err and len(err.strip().splitlines()) == 1
    assert out == ""


def test_markdown_path_that_is_a_folder(tmp_path: Path) -> None:
    code, _, err = run_cli("explain", "--markdown", str(tmp_path))
    assert code == 2 and f"--markdown {tmp_path} is a folder" in err


def test_readme_documents_exactly_the_options() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## `gradsight explain`", 1)[1].split("\n## ", 1)[0]
    rows = "\n".join(line for line in section.splitlines() if line.startswith("| `--"))
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    options = {s for a in sub.choices["explain"]._actions for s in a.option_strings}
    assert set(re.findall(r"`(--[a-z-]+)", rows)) == options - {"-h", "--help"}

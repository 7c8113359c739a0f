"""``gradsight graph`` in-process."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from gradsight.cli import main
from gradsight.reports import graph_render


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()


def test_json_graph_of_the_article_cnn_on_bundled_data(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    code, out, err = run_cli("graph", "--device", "cpu", "--out", str(path))
    assert code == 0, err
    data = json.loads(path.read_text())
    params = {n["name"]: n["shape"] for n in data["nodes"] if n["kind"] == "param"}
    assert params == {
        "conv1.weight": [16, 1, 3, 3], "conv1.bias": [16], "fc.weight": [10, 3136], "fc.bias": [10],
    }  # fmt: skip
    conv = next(n for n in data["nodes"] if n["name"] == "ConvolutionBackward0")
    assert conv["shape"] == [4, 16, 28, 28]  # default --batch-size 4
    assert f"wrote {path} (op level, json)" in out


def test_module_level_dot_forward(tmp_path: Path) -> None:
    path = tmp_path / "g.dot"
    code, _, err = run_cli(
        "graph", "--data", "synthetic", "--level", "module", "--direction", "forward",
        "--out", str(path), "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    dot = path.read_text()
    assert dot.startswith("digraph") and '"module:conv1" -> "module:relu"' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_svg_default_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli("graph", "--data", "synthetic", "--device", "cpu")
    assert code == 0, err
    assert (tmp_path / "graph.svg").read_bytes().lstrip().startswith(b"<?xml")


def test_missing_graphviz_one_line_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_render.shutil, "which", lambda name: None)
    path = tmp_path / "g.png"
    code, _, err = run_cli("graph", "--data", "synthetic", "--device", "cpu", "--out", str(path))
    assert code == 2 and "apt-get install graphviz" in err and len(err.strip().splitlines()) == 1
    assert not path.exists()


def test_bad_options(tmp_path: Path) -> None:
    code, _, err = run_cli("graph", "--format", "gif")
    assert code == 2 and "invalid choice: 'gif'" in err
    code, _, err = run_cli("graph", "--data", "synthetic", "--batch-size", "0")
    assert code == 2 and "--batch-size must be positive, got 0" in err
    code, _, err = run_cli("graph", "--data", "synthetic", "--out", str(tmp_path))
    assert code == 2 and "is a folder" in err

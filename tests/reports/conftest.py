"""Short real runs of ``gradsight train`` shared by the report tests (one per module)."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from gradsight.cli import main

EVIL = "<img src=x onerror=alert(1)>"
EVIL_SCRIPT = "</script><script>alert(2)</script>"


def train_run(run_dir: Path, *extra: str) -> Path:
    """Train 1 epoch on ``synthetic`` into ``run_dir`` in-process and return it."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["train", "--data", "synthetic", "--epochs", "1", "--batch-size", "64", "--log-every",
            "2", "--device", "cpu", "--quiet", "--out", str(run_dir), *extra]  # fmt: skip
    code = main(argv, stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert "warning: could not write" not in err.getvalue(), err.getvalue()
    return run_dir


@pytest.fixture(scope="module")
def simple_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of the article's SimpleCNN (8 steps, log every 2)."""
    return train_run(tmp_path_factory.mktemp("simple") / "run")


@pytest.fixture(scope="module")
def evil_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of a model whose module names are HTML/script injections."""
    root = tmp_path_factory.mktemp("evil")
    model = root / "evil_model.py"
    model.write_text(
        textwrap.dedent(
            f"""
            from torch import nn

            class Evil(nn.Module):
                def __init__(self, in_channels, num_classes):
                    super().__init__()
                    self.blocks = nn.ModuleDict({{
                        {EVIL!r}: nn.Conv2d(in_channels, 4, 3, padding=1),
                        {EVIL_SCRIPT!r}: nn.Linear(4, num_classes),
                    }})

                def forward(self, x):
                    conv, fc = self.blocks.values()
                    return fc(conv(x).relu().mean((2, 3)))
            """
        )
    )
    return train_run(root / "run", "--model", f"{model}:Evil")

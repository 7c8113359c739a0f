"""``gradsight train --data folder:PATH`` with unreadable image files, run in-process."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gradsight.cli import ExitCode, main
from gradsight.config import TrainConfig

FAST = ["--image-size", "8", "--epochs", "1", "--batch-size", "4", "--device", "cpu"]
FIX = "; remove or replace it, or pass --skip-bad-images"
SKIP_WIRED = "skip_bad_images" in {f.name for f in dataclasses.fields(TrainConfig)}


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _noise_png(path: Path, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path.read_bytes()


def _image_folder(root: Path) -> Path:
    """Write ``cat/`` and ``dog/`` with 4 good 8x8 PNGs each (000 to 002, and 004)."""
    for k, name in enumerate(("cat", "dog")):
        for i in (0, 1, 2, 4):
            _noise_png(root / name / f"{i:03d}.png", seed=10 * k + i)
    return root


def _truncate(path: Path) -> None:
    data = _noise_png(path, seed=99)
    path.write_bytes(data[: len(data) // 2])  # the PNG header reads; the pixels are cut off


def _decode_error(path: Path) -> str:
    """Pillow's error on decoding ``path`` as training does (the reason the CLI must show)."""
    with pytest.raises(Exception) as exc, Image.open(path) as image:
        image.convert("RGB")
    return str(exc.value)


@pytest.mark.parametrize(
    ("write_bad", "reason"),
    [
        (_truncate, None),  # the bug report: one corrupt PNG; the reason is Pillow's
        (lambda path: path.write_text("a text file named .png"), "cannot identify image file"),
        (lambda path: path.write_bytes(b""), "empty file"),
    ],
)
def test_unreadable_image_is_refused_before_the_run_folder(
    tmp_path: Path, write_bad: Callable[[Path], object], reason: str | None
) -> None:
    data = _image_folder(tmp_path / "data")
    write_bad(data / "cat" / "003.png")
    reason = reason or _decode_error(data / "cat" / "003.png")
    run = tmp_path / "run"
    code, out, err = run_cli("train", "--data", f"folder:{data}", *FAST, "--out", str(run))
    assert code == ExitCode.USAGE == 2
    assert (
        err == f"gradsight: error: folder:{data}: cannot read image 'cat/003.png' ({reason}){FIX}\n"
    )
    assert out == ""  # refused before the "training ..." line
    assert not run.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_the_same_folder_without_the_bad_file_trains(tmp_path: Path) -> None:
    # the control for the test above: the folder it refuses is otherwise fine
    data = _image_folder(tmp_path / "data")
    run = tmp_path / "run"
    code, out, err = run_cli(
        "train", "--data", f"folder:{data}", *FAST, "--out", str(run), "--quiet"
    )
    assert code == ExitCode.OK, err
    assert "(6 train / 2 test, 3x8x8)" in out
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


@pytest.mark.skipif(not SKIP_WIRED, reason="TrainConfig.skip_bad_images is not wired in yet")
def test_skip_bad_images_warns_once_per_file_and_counts_them(tmp_path: Path) -> None:
    data = _image_folder(tmp_path / "data")
    _truncate(data / "cat" / "003.png")
    (data / "dog" / "003.png").write_text("a text file named .png")
    run = tmp_path / "run"
    code, out, err = run_cli(
        "train", "--data", f"folder:{data}", *FAST, "--out", str(run), "--skip-bad-images"
    )
    assert code == ExitCode.OK, err
    skipped = [line for line in err.splitlines() if "unreadable" in line]
    prefix = f"gradsight: warning: folder:{data}: skipping unreadable image"
    assert skipped == [
        f"{prefix} 'cat/003.png' ({_decode_error(data / 'cat' / '003.png')})",
        f"{prefix} 'dog/003.png' (cannot identify image file)",
    ]
    assert "(6 train / 2 test, 3x8x8)" in out  # the 8 good images only
    assert json.loads((run / "config.json").read_text())["skip_bad_images"] is True
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["skipped_images"] == 2

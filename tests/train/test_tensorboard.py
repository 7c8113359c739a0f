"""``gradsight train --tensorboard``: the event files hold the run's scalars and histograms."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gradsight.cli import main
from gradsight.train.runfiles import read_metrics

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)


def test_tensorboard_scalars_and_histograms_match_metrics(tmp_path: Path) -> None:
    run = tmp_path / "run"
    out, err = io.StringIO(), io.StringIO()
    code = main(["train", "--data", "synthetic", "--epochs", "1", "--device", "cpu", "--quiet",
                 "--log-every", "2", "--tensorboard", "--tensorboard-hist-every", "4",
                 "--out", str(run)], stdout=out, stderr=err)  # fmt: skip
    assert code == 0, err.getvalue()
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"histograms": 0}).Reload()
    tags = acc.Tags()
    assert set(tags["scalars"]) == {
        "train/loss", "train/acc", "train/lr", "grad_norm/total",
        "epoch/train_loss", "epoch/train_acc", "epoch/test_loss", "epoch/test_acc",
    }  # fmt: skip
    params = {"conv1.weight", "conv1.bias", "fc.weight", "fc.bias"}
    assert set(tags["histograms"]) == {f"grad/{p}" for p in params}
    assert [e.step for e in acc.Histograms("grad/fc.weight")] == [4, 8]  # 8 steps, every 4
    metrics = read_metrics(run / "metrics.jsonl")
    steps = [m for m in metrics if m["kind"] == "step"]
    for tag, key in (("train/loss", "loss"), ("grad_norm/total", "grad_norm_total")):
        logged = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in logged] == [m["step"] for m in steps]
        assert [v for _, v in logged] == pytest.approx([m[key] for m in steps], rel=1e-6)
    epoch = next(m for m in metrics if m["kind"] == "epoch")
    assert acc.Scalars("epoch/test_acc")[0].value == pytest.approx(epoch["test_acc"])


def test_negative_histogram_interval_is_refused(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = main(["train", "--tensorboard-hist-every", "-1", "--out", str(tmp_path / "r")],
                stdout=out, stderr=err)  # fmt: skip
    assert code == 2 and "--tensorboard-hist-every must be >= 0, got -1" in err.getvalue()
    assert not (tmp_path / "r").exists()

"""``curves.png`` and ``gradflow.png``: the plotted values are those of ``metrics.jsonl``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from gradsight.reports import plots
from gradsight.train.runfiles import read_metrics


def _same(a: tuple[float, ...], b: list[Any]) -> bool:
    return len(a) == len(b) and all(
        (math.isnan(x) and y is None) or x == y for x, y in zip(a, b, strict=True)
    )


def test_curve_data_equals_metrics(simple_run: Path) -> None:
    metrics = read_metrics(simple_run / "metrics.jsonl")
    data = plots.curve_data(metrics)
    epochs = [m for m in metrics if m["kind"] == "epoch"]
    steps = [m for m in metrics if m["kind"] == "step"]
    assert data.epochs == (1,) and len(steps) == 4  # 512 images / 64 = 8 steps, log every 2
    for field in ("train_loss", "test_loss", "train_acc", "test_acc"):
        assert _same(getattr(data, field), [m[field] for m in epochs]), field
    assert data.steps == (2, 4, 6, 8)
    assert _same(data.step_loss, [m["loss"] for m in steps])


def test_gradflow_data_equals_metrics(simple_run: Path) -> None:
    metrics = [m for m in read_metrics(simple_run / "metrics.jsonl") if m["kind"] == "step"]
    data = plots.gradflow_data(metrics)
    assert data.layers == ("conv1", "fc")
    assert data.steps == tuple(m["step"] for m in metrics)
    for layer, row in zip(data.layers, data.norms, strict=True):
        assert _same(row, [m["grad_norm"][layer] for m in metrics])
    assert _same(data.total, [m["grad_norm_total"] for m in metrics])


def test_missing_and_null_values_become_nan() -> None:
    metrics = [
        {"kind": "step", "step": 1, "loss": None, "grad_norm_total": None, "grad_norm": {"a": 1.0}},
        {"kind": "step", "step": 2, "loss": 0.5, "grad_norm_total": 2.0, "grad_norm": {"b": 3.0}},
        {"kind": "epoch", "epoch": 1, "train_loss": 1.0, "test_loss": None, "train_acc": 0.5,
         "test_acc": 0.25},
    ]  # fmt: skip
    flow = plots.gradflow_data(metrics)
    assert flow.layers == ("a", "b")
    assert _same(flow.norms[0], [1.0, None]) and _same(flow.norms[1], [None, 3.0])
    curves = plots.curve_data(metrics)
    assert _same(curves.step_loss, [None, 0.5]) and _same(curves.test_loss, [None])


def test_write_plots_hands_the_metrics_to_the_drawing(
    simple_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "metrics.jsonl").write_bytes((simple_run / "metrics.jsonl").read_bytes())
    drawn: dict[str, Any] = {}
    monkeypatch.setattr(plots, "draw_curves", lambda data, path: drawn.update(curves=data))
    monkeypatch.setattr(plots, "draw_gradflow", lambda data, path: drawn.update(flow=data))
    plots.write_plots(tmp_path)
    metrics = read_metrics(simple_run / "metrics.jsonl")
    assert drawn == {"curves": plots.curve_data(metrics), "flow": plots.gradflow_data(metrics)}


NO_STEPS = "fewer than --log-every steps: no per-step points"


def _texts(fig: Any) -> list[list[str]]:
    """Return the free text written in each of ``fig``'s axes (titles and labels excluded)."""
    return [[t.get_text() for t in ax.texts] for ax in fig.axes]


def test_a_run_shorter_than_log_every_says_so_in_its_step_panels(tmp_path: Path) -> None:
    # what `gradsight train --epochs 1 --log-every 100` on synthetic writes: 8 steps, no step line
    epoch = {"kind": "epoch", "epoch": 1, "step": 8, "train_loss": 2.07, "train_acc": 0.38,
             "test_loss": 1.58, "test_acc": 0.87, "seconds": 0.9}  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text(json.dumps(epoch) + "\n")
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    curves = plots.curves_figure(plots.curve_data(metrics))
    assert _texts(curves) == [[], [], [NO_STEPS]]  # the epoch panels still plot their point
    assert [list(line.get_xdata()) for line in curves.axes[0].lines] == [[1], [1]]
    flow = plots.gradflow_figure(plots.gradflow_data(metrics))
    assert _texts(flow) == [[NO_STEPS], [NO_STEPS]]
    assert plots.write_plots(tmp_path) == [tmp_path / "curves.png", tmp_path / "gradflow.png"]
    for name in ("curves.png", "gradflow.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_logged_steps_are_plotted_without_the_note(simple_run: Path) -> None:
    metrics = read_metrics(simple_run / "metrics.jsonl")
    curves = plots.curves_figure(plots.curve_data(metrics))
    assert _texts(curves) == [[], [], []]
    (step_line,) = curves.axes[2].lines
    assert list(step_line.get_xdata()) == [2, 4, 6, 8]
    flow = plots.gradflow_figure(plots.gradflow_data(metrics))
    assert _texts(flow) == [[], [], []]  # lines, heatmap, colorbar
    assert [line.get_label() for line in flow.axes[0].lines] == ["conv1", "fc", "total"]


@pytest.mark.parametrize("name", ["curves.png", "gradflow.png"])
def test_train_writes_non_blank_plots(simple_run: Path, name: str) -> None:
    path = simple_run / name
    assert path.stat().st_size > 10_000
    pixels = matplotlib.image.imread(path)  # (H, W, 4) floats in [0, 1]
    assert pixels.shape[0] > 300 and pixels.shape[1] > 1000
    assert pixels[..., :3].std() > 0.05  # not a blank canvas
    assert (pixels[..., :3].min(axis=2) < 0.5).mean() > 0.005  # some dark ink: axes, lines


def test_plot_failure_warns_and_training_still_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from gradsight.cli import main
    from gradsight.reports import html as report_html  # writes the plots at the end of a run

    def broken(run_dir: Path) -> list[Path]:
        raise RuntimeError("boom")

    monkeypatch.setattr(report_html, "write_plots", broken)
    out, err = io.StringIO(), io.StringIO()
    code = main(["train", "--data", "synthetic", "--epochs", "1", "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "run")], stdout=out, stderr=err)  # fmt: skip
    assert code == 0
    assert "warning: could not write plots" in err.getvalue() and "boom" in err.getvalue()
    assert (tmp_path / "run" / "model.pt").is_file()
    assert (tmp_path / "run" / "report.html").is_file()


def test_epoch_axes_have_whole_number_ticks() -> None:
    from gradsight.reports.plots import CurveData, curves_figure

    data = CurveData(epochs=(1, 2), train_loss=(1.0, 0.5), test_loss=(1.1, 0.6),
                     train_acc=(0.5, 0.7), test_acc=(0.4, 0.6), steps=(), step_loss=())  # fmt: skip
    fig = curves_figure(data)
    for ax in fig.axes[:2]:
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 2]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks

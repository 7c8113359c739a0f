"""Training plots from ``metrics.jsonl``: ``curves.png`` and ``gradflow.png`` (Matplotlib, Agg).

Data extraction (:func:`curve_data`, :func:`gradflow_data`) is kept apart from drawing
(:func:`curves_figure`, :func:`gradflow_figure`) and from writing (:func:`draw_curves`,
:func:`draw_gradflow`), so the plotted values and the figure's notes can be checked against
``metrics.jsonl`` without looking at pixels.

A run shorter than ``log_every`` steps has no step lines in ``metrics.jsonl``; the panels
over steps then say so (:data:`NO_STEPS_NOTE`) instead of coming out as empty axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from gradsight.train.runfiles import read_metrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "NO_STEPS_NOTE",
    "CurveData",
    "GradflowData",
    "curve_data",
    "curves_figure",
    "draw_curves",
    "draw_gradflow",
    "gradflow_data",
    "gradflow_figure",
    "write_plots",
]


NO_STEPS_NOTE = "fewer than --log-every steps: no per-step points"


@dataclass(frozen=True)
class CurveData:
    """Per-epoch train/test loss and accuracy, and per-step loss, as plotted in ``curves.png``."""

    epochs: tuple[int, ...]
    train_loss: tuple[float, ...]
    test_loss: tuple[float, ...]
    train_acc: tuple[float, ...]
    test_acc: tuple[float, ...]
    steps: tuple[int, ...]
    step_loss: tuple[float, ...]


@dataclass(frozen=True)
class GradflowData:
    """Per-layer gradient norms over steps, as plotted in ``gradflow.png``.

    ``norms[i][j]`` is layer ``layers[i]``'s gradient norm at ``steps[j]`` (NaN when that
    step line has no finite value for the layer).
    """

    steps: tuple[int, ...]
    layers: tuple[str, ...]
    norms: tuple[tuple[float, ...], ...]
    total: tuple[float, ...]


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def curve_data(metrics: Sequence[dict[str, Any]]) -> CurveData:
    """Return the values of ``curves.png`` from ``metrics.jsonl`` records (None -> NaN)."""
    epochs = [m for m in metrics if m.get("kind") == "epoch"]
    steps = [m for m in metrics if m.get("kind") == "step"]
    return CurveData(
        epochs=tuple(int(m["epoch"]) for m in epochs),
        train_loss=tuple(_num(m.get("train_loss")) for m in epochs),
        test_loss=tuple(_num(m.get("test_loss")) for m in epochs),
        train_acc=tuple(_num(m.get("train_acc")) for m in epochs),
        test_acc=tuple(_num(m.get("test_acc")) for m in epochs),
        steps=tuple(int(m["step"]) for m in steps),
        step_loss=tuple(_num(m.get("loss")) for m in steps),
    )


def gradflow_data(metrics: Sequence[dict[str, Any]]) -> GradflowData:
    """Return the values of ``gradflow.png``: layers in order of first appearance."""
    steps = [m for m in metrics if m.get("kind") == "step"]
    layers: dict[str, None] = {}
    for m in steps:
        layers.update(dict.fromkeys(m.get("grad_norm") or {}))
    norms = tuple(
        tuple(_num((m.get("grad_norm") or {}).get(layer)) for m in steps) for layer in layers
    )
    return GradflowData(
        steps=tuple(int(m["step"]) for m in steps),
        layers=tuple(layers),
        norms=norms,
        total=tuple(_num(m.get("grad_norm_total")) for m in steps),
    )


def _figure(rows: int, cols: int, size: tuple[float, float]) -> tuple[Figure, Any]:
    # The object-oriented API with the Agg canvas: no pyplot state, no GUI backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def _say_no_steps(ax: Axes) -> None:
    """Write :data:`NO_STEPS_NOTE` across an empty panel over steps, without its dummy ticks."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, NO_STEPS_NOTE, transform=ax.transAxes, ha="center", va="center",
            color="0.3", wrap=True)  # fmt: skip


def curves_figure(data: CurveData) -> Figure:
    """Return loss per epoch, accuracy per epoch and loss per step side by side."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = _figure(1, 3, (13.0, 3.6))
    loss_ax, acc_ax, step_ax = axes[0]
    for ax, (train, test), title in (
        (loss_ax, (data.train_loss, data.test_loss), "loss per epoch"),
        (acc_ax, (data.train_acc, data.test_acc), "accuracy per epoch"),
    ):
        ax.plot(data.epochs, train, "o-", label="train")
        ax.plot(data.epochs, test, "s--", label="test")
        ax.set(title=title, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        ax.legend()
    acc_ax.set_ylim(0.0, 1.0)
    step_ax.set(title="training loss per logged step", xlabel="step", ylabel="loss")
    if not data.steps:
        _say_no_steps(step_ax)
        return fig
    step_ax.plot(data.steps, data.step_loss, color="tab:gray")
    step_ax.grid(alpha=0.3)
    return fig


def gradflow_figure(data: GradflowData) -> Figure:
    """Return per-layer gradient norms over steps (log scale) and a layer x step heatmap."""
    fig, axes = _figure(1, 2, (13.0, max(3.6, 1.0 + 0.3 * len(data.layers))))
    lines_ax, heat_ax = axes[0]
    lines_ax.set(title="gradient norm per layer", xlabel="step", ylabel="||grad||")
    heat_ax.set(title="layer x step", xlabel="step")
    if not data.steps:
        _say_no_steps(lines_ax)
        _say_no_steps(heat_ax)
        return fig
    _draw_norm_lines(lines_ax, data)
    _draw_heatmap(fig, heat_ax, data)
    return fig


def _draw_norm_lines(ax: Axes, data: GradflowData) -> None:
    for layer, norms in zip(data.layers, data.norms, strict=True):
        ax.plot(data.steps, norms, label=layer)
    ax.plot(data.steps, data.total, "k--", linewidth=1, label="total")
    if any(v > 0 for row in (*data.norms, data.total) for v in row if math.isfinite(v)):
        ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="best")


def _draw_heatmap(fig: Figure, ax: Axes, data: GradflowData) -> None:
    import numpy as np
    from matplotlib.colors import LogNorm

    grid = np.array(data.norms, dtype=float).reshape(len(data.layers), len(data.steps))
    positive = grid[np.isfinite(grid) & (grid > 0)]
    if positive.size:
        image = ax.imshow(
            np.where(grid > 0, grid, np.nan), aspect="auto", interpolation="nearest",
            cmap="viridis", norm=LogNorm(vmin=positive.min(), vmax=positive.max()),
        )  # fmt: skip
        fig.colorbar(image, ax=ax, label="||grad|| (log)")
    ax.set_yticks(range(len(data.layers)), data.layers)
    ticks = np.linspace(0, len(data.steps) - 1, num=min(len(data.steps), 8), dtype=int)
    ax.set_xticks(ticks, [str(data.steps[t]) for t in ticks])


def draw_curves(data: CurveData, path: Path | IO[bytes]) -> Path | IO[bytes]:
    """Write :func:`curves_figure` of ``data`` to ``path`` as PNG and return ``path``."""
    curves_figure(data).savefig(path, format="png")
    return path


def draw_gradflow(data: GradflowData, path: Path | IO[bytes]) -> Path | IO[bytes]:
    """Write :func:`gradflow_figure` of ``data`` to ``path`` as PNG and return ``path``."""
    gradflow_figure(data).savefig(path, format="png")
    return path


def write_plots(run_dir: Path) -> list[Path]:
    """Write ``curves.png`` and ``gradflow.png`` into ``run_dir`` from its ``metrics.jsonl``.

    Raises:
        FileNotFoundError: the run folder has no ``metrics.jsonl``.
    """
    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir / "metrics.jsonl")
    curves, gradflow = run_dir / "curves.png", run_dir / "gradflow.png"
    draw_curves(curve_data(metrics), curves)
    draw_gradflow(gradflow_data(metrics), gradflow)
    return [curves, gradflow]

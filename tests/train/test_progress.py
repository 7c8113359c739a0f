"""The loop's running metrics: image-weighted sums, numbers on the CPU, one read per window."""

from __future__ import annotations

import pytest
import torch

from gradsight.train.progress import MetricWindow


def _step(window: MetricWindow, loss: float, logits: list[list[float]], labels: list[int]) -> None:
    window.add(
        torch.tensor(loss, requires_grad=True) * 1, torch.tensor(logits), torch.tensor(labels)
    )


def test_a_window_weights_each_step_by_its_images_and_counts_hits() -> None:
    window = MetricWindow()
    _step(window, 2.0, [[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], [1, 1, 1])  # 3 images, 2 hits
    _step(window, 0.5, [[1.0, 0.0]], [0])  # 1 image, 1 hit
    assert all(isinstance(v, float) for v in window.losses)  # on the CPU: numbers, no tensors
    assert all(isinstance(v, int) for v in window.hits)
    loss_sum, hits, images, _ = window.flush()
    assert (loss_sum, hits, images) == (pytest.approx(2.0 * 3 + 0.5), 3, 4)
    assert (window.loss_total, window.hits_total, window.seen) == (pytest.approx(6.5), 3, 4)
    assert window.losses == [] and window.flush()[:3] == (0.0, 0, 0)


def test_a_window_restored_from_a_checkpoint_flushes_the_same() -> None:
    window = MetricWindow()
    _step(window, 1.25, [[0.0, 1.0], [0.0, 1.0]], [1, 0])
    restored = MetricWindow.from_dict(window.to_dict(), torch.device("cpu"))
    assert all(isinstance(v, torch.Tensor) for v in restored.losses)  # saved as tensors
    _step(restored, 0.75, [[2.0, 1.0]], [0])  # and mixed with numbers after the resume
    loss_sum, hits, images, _ = restored.flush()
    assert loss_sum == 1.25 * 2 + 0.75 and (hits, images) == (2, 3)

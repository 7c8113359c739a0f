"""The checkpoint observer's guard against writing NaN/Inf weights."""

from __future__ import annotations

import torch

from gradsight.checkpoint.observer import _nonfinite_weights


def test_nonfinite_weights_are_named_exactly() -> None:
    model = torch.nn.Linear(3, 2)
    assert _nonfinite_weights(model) == []
    with torch.no_grad():
        model.weight.fill_(3e38)  # finite, but the sum overflows: must not be refused
    assert _nonfinite_weights(model) == []
    with torch.no_grad():
        model.bias[1] = float("nan")
    assert _nonfinite_weights(model) == ["bias"]
    model.register_buffer("steps", torch.tensor([1, 2]))  # integer buffers are skipped
    assert _nonfinite_weights(model) == ["bias"]

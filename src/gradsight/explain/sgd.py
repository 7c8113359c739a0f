"""One SGD step by hand, ``w <- w - lr * grad`` with NumPy's gradients, vs ``optimizer.step()``."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gradsight.explain.batch import ExplainBatch
from gradsight.explain.comparison import Comparison, compare
from gradsight.numpy_ref import simple_cnn_forward_backward

__all__ = ["SGDStepDemo", "StepRow", "sgd_step_demo"]


@dataclass(frozen=True)
class StepRow:
    """One parameter's update."""

    name: str
    update_norm: float  # || lr * grad ||, how far the step moved the weights
    comparison: Comparison  # NumPy's w - lr * grad vs the weights after optimizer.step()


@dataclass(frozen=True)
class SGDStepDemo:
    """One plain SGD step (no momentum, no weight decay) on the batch."""

    lr: float
    loss_before: float
    loss_after: float  # on the same batch, after the step
    rows: tuple[StepRow, ...]


def sgd_step_demo(batch: ExplainBatch, lr: float) -> SGDStepDemo:
    """Update a copy of the model with ``torch.optim.SGD`` and compare with the step by hand.

    The hand-made step uses the NumPy reference's gradients, so the check covers the whole
    way from the loss to the new weights.
    """
    model = copy.deepcopy(batch.model)
    before = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    _, grads = simple_cnn_forward_backward(before, batch.images.numpy(), batch.labels.numpy())
    by_hand = {k: before[k] - lr * grads[k] for k in grads}
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    optimizer.zero_grad()
    loss = F.cross_entropy(model(batch.images), batch.labels)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        loss_after = F.cross_entropy(model(batch.images), batch.labels).item()
    rows = tuple(
        StepRow(
            name=name,
            update_norm=float(np.linalg.norm(lr * grads[name])),
            comparison=compare(f"sgd {name}", by_hand[name], p.detach().numpy()),
        )
        for name, p in model.named_parameters()
    )
    return SGDStepDemo(lr, loss.item(), loss_after, rows)

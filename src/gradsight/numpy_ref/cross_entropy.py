"""Softmax cross-entropy with mean reduction, as ``nn.CrossEntropyLoss()``, and its gradient."""

from __future__ import annotations

import numpy as np

from gradsight.errors import ConfigError

__all__ = ["softmax_cross_entropy"]


def _check(logits: np.ndarray, labels: np.ndarray) -> None:
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ConfigError(
            f"softmax_cross_entropy: logits {list(logits.shape)} and labels "
            f"{list(labels.shape)} do not fit; expected logits (N, K) and labels (N,)"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(
            f"softmax_cross_entropy: labels must be integer class indices, got {labels.dtype}; "
            "convert with labels.astype(np.int64)"
        )
    k = logits.shape[1]
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        bad = labels[(labels < 0) | (labels >= k)][0]
        raise ConfigError(
            f"softmax_cross_entropy: label {int(bad)} is not a class index in [0, {k - 1}]"
        )


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Return the mean cross-entropy loss and ``dL/dlogits = (softmax - onehot) / N``.

    Stable for any logits: subtracting each row's max first makes every exponent <= 0.

    Args:
        logits: scores (N, K).
        labels: true class indices (N,), integers in [0, K).

    Returns:
        ``(loss, dlogits)``: the loss as a float and its gradient (N, K), in logits' dtype.

    Raises:
        ConfigError: shapes that do not fit, or labels that are not class indices.
    """
    _check(logits, labels)
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)  # (N, K), each row's max is 0
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, K)
    rows = np.arange(n)
    loss = -log_probs[rows, labels].mean()
    dlogits = np.exp(log_probs)  # softmax (N, K)
    dlogits[rows, labels] -= 1
    dlogits /= n
    return float(loss), dlogits

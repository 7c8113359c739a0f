"""Check an analytic gradient against central finite differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from gradsight.errors import ConfigError
from gradsight.numpy_ref.compare import max_abs_diff, max_rel_diff

__all__ = ["GradcheckResult", "gradcheck", "numerical_gradients"]

#: ``f(*inputs) -> (scalar loss, one analytic gradient per input)``.
LossAndGrads = Callable[..., tuple[float, Sequence[np.ndarray]]]


@dataclass(frozen=True)
class GradcheckResult:
    """Per input, how far the analytic gradient is from the finite-difference one."""

    max_abs_errors: tuple[float, ...]
    max_rel_errors: tuple[float, ...]  # relative to the largest finite-difference entry
    rtol: float

    @property
    def passed(self) -> bool:
        """Whether every input's relative error is within ``rtol``."""
        return all(e <= self.rtol for e in self.max_rel_errors)


def numerical_gradients(
    f: Callable[..., float], inputs: Sequence[np.ndarray], eps: float = 1e-6
) -> list[np.ndarray]:
    """Return ``(f(x + eps) - f(x - eps)) / (2 eps)`` for every element of every input.

    Args:
        f: a scalar function of the inputs, ``f(*inputs) -> float``.
        inputs: the point to differentiate at; not modified.
        eps: the step; 1e-6 suits float64.

    Returns:
        One gradient per input, shaped like it.
    """
    point = [np.array(x, copy=True) for x in inputs]
    grads = []
    for x in point:
        grad = np.zeros_like(x)
        flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: writes reach x and grad
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            up = f(*point)
            flat[i] = orig - eps
            down = f(*point)
            flat[i] = orig
            gflat[i] = (up - down) / (2 * eps)
        grads.append(grad)
    return grads


def gradcheck(
    f: LossAndGrads, inputs: Sequence[np.ndarray], eps: float = 1e-6, rtol: float = 1e-6
) -> GradcheckResult:
    """Compare the gradients ``f`` returns with central finite differences of its loss.

    Use float64 inputs away from kinks (ReLU at 0, max-pool ties), where the function is
    not differentiable and finite differences mean nothing.

    Args:
        f: ``f(*inputs) -> (loss, grads)``, one analytic gradient per input.
        inputs: the point to check at; not modified.
        eps: the finite-difference step.
        rtol: the largest relative error that passes.

    Returns:
        The errors per input; ``.passed`` says whether all are within ``rtol``.

    Raises:
        ConfigError: ``f`` returns a different number of gradients, or wrong shapes.

    >>> import numpy as np
    >>> gradcheck(lambda x: (float((x**2).sum()), [2 * x]), [np.array([1.0, -3.0])]).passed
    True
    """
    _, analytic = f(*[np.array(x, copy=True) for x in inputs])
    if isinstance(analytic, np.ndarray) or len(analytic) != len(inputs):
        count = "an array" if isinstance(analytic, np.ndarray) else f"{len(analytic)} gradients"
        raise ConfigError(
            f"gradcheck: f returned {count} for {len(inputs)} inputs; "
            "return (loss, [one gradient per input])"
        )
    numeric = numerical_gradients(lambda *xs: f(*xs)[0], inputs, eps)
    return GradcheckResult(
        max_abs_errors=tuple(max_abs_diff(a, n) for a, n in zip(analytic, numeric, strict=True)),
        max_rel_errors=tuple(max_rel_diff(a, n) for a, n in zip(analytic, numeric, strict=True)),
        rtol=rtol,
    )

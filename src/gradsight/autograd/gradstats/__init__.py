"""The size of a gradient tensor: L2 norm, max |g|, exact zeros and NaN/Inf count.

A traced backward measures every gradient that flows, so these reductions are most of the
cost of watching backprop. They only read the tensor. On the CPU, float32/float64
tensors are read through a NumPy view of their memory: a NumPy reduction costs about 1 us
of call overhead against about 5 us for a torch op, and a graph has hundreds of small
gradients. Comparisons go through one small reused buffer, because a fresh full-size
temporary pays page faults on every call (2.6 ms for a 4 MB one on the development machine).
On accelerators a :class:`Meter` queues the reductions on the device instead, to be read
after the backward pass without a sync per gradient.

One module per way of measuring, each tested against :func:`reference_stats`:

- ``stats``: :class:`GradStats`, the plain result.
- ``dispatch``: :func:`grad_stats`, which picks the path (and measures sparse gradients).
- ``numpy_view``: CPU float32/float64 through a NumPy view.
- ``torch_path``: torch ops with a reused :class:`Scratch` buffer.
- ``reductions``: 0-d device reductions, read later or at once (the exact NaN/Inf path).
- ``meter``: :class:`Meter`, deferred measurement on accelerators.
- ``reference``: :func:`reference_stats`, the slow plain-torch definition.
"""

from gradsight.autograd.gradstats.dispatch import grad_stats
from gradsight.autograd.gradstats.meter import Meter, Queued, Stat, reshaped
from gradsight.autograd.gradstats.numpy_view import count_where, dense_view
from gradsight.autograd.gradstats.reference import reference_stats
from gradsight.autograd.gradstats.stats import GradStats
from gradsight.autograd.gradstats.torch_path import Scratch, l2_norm, squared_norm

__all__ = [
    "GradStats",
    "Meter",
    "Queued",
    "Scratch",
    "Stat",
    "count_where",
    "dense_view",
    "grad_stats",
    "l2_norm",
    "reference_stats",
    "reshaped",
    "squared_norm",
]

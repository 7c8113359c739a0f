"""Backprop by hand: every SimpleCNN op in NumPy, forward and backward, with no torch.

Each op module has ``<op>_forward(...) -> (out, cache)`` and ``<op>_backward(dout, cache)``;
:func:`simple_cnn_forward_backward` chains them into the article's network, and
:func:`gradcheck` checks any of them against finite differences. The tests check every one
against PyTorch's autograd, so this package is also gradsight's correctness oracle.

>>> import numpy as np
>>> from gradsight.numpy_ref import relu_backward, relu_forward
>>> out, cache = relu_forward(np.array([-1.0, 0.0, 2.0]))
>>> relu_backward(np.ones(3), cache)
array([0., 0., 1.])
"""

from gradsight.numpy_ref.compare import max_abs_diff, max_rel_diff
from gradsight.numpy_ref.conv import Conv2dCache, conv2d_backward, conv2d_forward
from gradsight.numpy_ref.cross_entropy import softmax_cross_entropy
from gradsight.numpy_ref.flatten import FlattenCache, flatten_backward, flatten_forward
from gradsight.numpy_ref.gradcheck import GradcheckResult, gradcheck, numerical_gradients
from gradsight.numpy_ref.linear import LinearCache, linear_backward, linear_forward
from gradsight.numpy_ref.maxpool import MaxPool2dCache, maxpool2d_backward, maxpool2d_forward
from gradsight.numpy_ref.relu import ReluCache, relu_backward, relu_forward
from gradsight.numpy_ref.simple_cnn import (
    ACTIVATION_NAMES,
    PARAM_NAMES,
    SimpleCNNTrace,
    simple_cnn_forward_backward,
    simple_cnn_trace,
)

__all__ = [
    "ACTIVATION_NAMES",
    "PARAM_NAMES",
    "Conv2dCache",
    "FlattenCache",
    "GradcheckResult",
    "LinearCache",
    "MaxPool2dCache",
    "ReluCache",
    "SimpleCNNTrace",
    "conv2d_backward",
    "conv2d_forward",
    "flatten_backward",
    "flatten_forward",
    "gradcheck",
    "linear_backward",
    "linear_forward",
    "max_abs_diff",
    "max_rel_diff",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "numerical_gradients",
    "relu_backward",
    "relu_forward",
    "simple_cnn_forward_backward",
    "simple_cnn_trace",
    "softmax_cross_entropy",
]

"""The backward rule of every SimpleCNN gradient, in symbols and in words, in backward order.

Symbols: x input, c = conv1(x), r = relu(c), p = pool(r), a = flatten(p), z = fc(a) the
logits, y the labels, N the batch size, L the mean cross-entropy loss.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BACKWARD_RULES", "Rule"]


@dataclass(frozen=True)
class Rule:
    """How one gradient follows from the one after it."""

    key: str  # an activation name (simple_cnn.ACTIVATION_NAMES) or a parameter name
    title: str
    symbols: str
    words: str

    @property
    def is_parameter(self) -> bool:
        """Whether this is a parameter's gradient (``.grad``) rather than an activation's."""
        return "." in self.key


BACKWARD_RULES = (
    Rule(
        "logits",
        "softmax minus one-hot",
        "dL/dz = (softmax(z) - onehot(y)) / N",
        "Mean cross-entropy: each row's probabilities, minus 1 at the true class, "
        "divided by the batch size.",
    ),
    Rule(
        "fc.weight",
        "fc weight gradient",
        "dL/dW_fc = (dL/dz)ᵀ · a",
        "Each weight's gradient sums, over the batch, the logit gradient times the "
        "feature it multiplies.",
    ),
    Rule(
        "fc.bias",
        "fc bias gradient",
        "dL/db_fc = Σ_n dL/dz[n]",
        "The bias is added to every sample, so its gradient is the batch sum of dL/dz.",
    ),
    Rule(
        "flatten",
        "back through fc and flatten",
        "dL/da = dL/dz · W_fc,  dL/dp = reshape(dL/da)",
        "The logit gradient flows back through the weights; flatten's backward only "
        "reshapes it to (N, 16, H/2, W/2).",
    ),
    Rule(
        "relu",
        "max-pool routing",
        "dL/dr[n,k,i,j] = dL/dp[n,k,i//2,j//2] if r[n,k,i,j] is its window's max, else 0",
        "Only the largest value of each 2x2 window reached the output, so only it gets "
        "the gradient (on ties the first in row-major order, as PyTorch); 3 in 4 get 0.",
    ),
    Rule(
        "conv1",
        "ReLU mask",
        "dL/dc = dL/dr ⊙ 1[c > 0]",
        "ReLU passes the gradient where its input was positive and blocks it elsewhere, "
        "including at exactly 0.",
    ),
    Rule(
        "conv1.bias",
        "conv bias gradient",
        "dL/db_conv[f] = Σ_{n,i,j} dL/dc[n,f,i,j]",
        "Each filter's bias is added at every position of every image: sum its gradient "
        "over all of them.",
    ),
    Rule(
        "conv1.weight",
        "conv weight gradient",
        "dL/dW_conv[f,k,u,v] = Σ_{n,i,j} dL/dc[n,f,i,j] · x_pad[n,k,i+u,j+v]",
        "Each kernel weight's gradient correlates the output gradient with the padded "
        "input patch that weight touched at every position.",
    ),
)

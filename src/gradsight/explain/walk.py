"""The whole walk-through, from y = x^2 + 3x + 1 to one SGD step, as one plain result."""

from __future__ import annotations

from dataclasses import dataclass

from gradsight.explain.batch import Setting, load_batch
from gradsight.explain.comparison import Comparison
from gradsight.explain.config import ExplainConfig
from gradsight.explain.layers import LayerWalk, walk_layers
from gradsight.explain.scalar import ScalarExample, scalar_example
from gradsight.explain.sgd import SGDStepDemo, sgd_step_demo
from gradsight.explain.zero_grad import ZeroGradDemo, zero_grad_demo

__all__ = ["Explanation", "explain"]


@dataclass(frozen=True)
class Explanation:
    """Everything ``gradsight explain`` shows; every figure in it was measured in this run."""

    setting: Setting
    scalar: ScalarExample
    layers: LayerWalk
    zero_grad: ZeroGradDemo
    sgd: SGDStepDemo

    def comparisons(self) -> tuple[Comparison, ...]:
        """Return every NumPy-or-formula vs PyTorch comparison, in the order shown."""
        found = [self.scalar.comparison]
        found += [s.comparison for s in self.layers.forward if s.comparison is not None]
        found += [s.comparison for s in self.layers.backward]
        for row in self.zero_grad.rows:
            found += [row.twice, row.after_zero]
        found += [row.comparison for row in self.sgd.rows]
        return tuple(found)

    def failures(self) -> tuple[Comparison, ...]:
        """Return the comparisons outside their tolerance."""
        return tuple(c for c in self.comparisons() if not c.passed)

    @property
    def ok(self) -> bool:
        """Whether every comparison passed and zero_grad cleared every gradient."""
        return not self.failures() and self.zero_grad.cleared


def explain(config: ExplainConfig) -> Explanation:
    """Run the article's walk-through of backpropagation on a real batch and check each step.

    Args:
        config: the batch size, seed, data choice and learning rate.

    Returns:
        The scalar example, both passes layer by layer, the zero_grad demonstration and
        one SGD step, each with its comparison against PyTorch.

    Raises:
        ConfigError: a batch larger than the bundled test split.

    >>> result = explain(ExplainConfig(batch_size=2))
    >>> result.ok, result.layers.backward[-1].name, result.layers.backward[-1].shape
    (True, 'conv1.weight.grad', (16, 1, 3, 3))
    """
    batch = load_batch(config)
    return Explanation(
        setting=batch.setting,
        scalar=scalar_example(2.0),
        layers=walk_layers(batch),
        zero_grad=zero_grad_demo(batch),
        sgd=sgd_step_demo(batch, config.lr),
    )

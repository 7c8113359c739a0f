"""The article's walk through ``loss.backward()``, computed and checked on a real batch.

:func:`explain` returns plain dataclasses; ``gradsight.reports.explain_render`` turns them
into terminal output or Markdown, and ``gradsight explain`` prints them.
"""

from gradsight.explain.batch import ExplainBatch, Setting, load_batch
from gradsight.explain.comparison import FLOAT64_TOLERANCE, Comparison, compare
from gradsight.explain.config import ARTICLE_LR, MAX_RANDOM_BATCH, ExplainConfig
from gradsight.explain.layers import BackwardStep, ForwardStep, LayerWalk, walk_layers
from gradsight.explain.rules import BACKWARD_RULES, Rule
from gradsight.explain.scalar import ScalarExample, scalar_example
from gradsight.explain.sgd import SGDStepDemo, StepRow, sgd_step_demo
from gradsight.explain.walk import Explanation, explain
from gradsight.explain.zero_grad import AccumulationRow, ZeroGradDemo, zero_grad_demo

__all__ = [
    "ARTICLE_LR",
    "BACKWARD_RULES",
    "FLOAT64_TOLERANCE",
    "MAX_RANDOM_BATCH",
    "AccumulationRow",
    "BackwardStep",
    "Comparison",
    "ExplainBatch",
    "ExplainConfig",
    "Explanation",
    "ForwardStep",
    "LayerWalk",
    "Rule",
    "SGDStepDemo",
    "ScalarExample",
    "Setting",
    "StepRow",
    "ZeroGradDemo",
    "compare",
    "explain",
    "load_batch",
    "scalar_example",
    "sgd_step_demo",
    "walk_layers",
    "zero_grad_demo",
]
